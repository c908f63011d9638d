"""Billed charges as a Dagster asset: Vast.ai's real bill, one UTC day per partition.

`landed_billed_charges` is the bill fetched and landed (raw zone and Parquet), named apart
from the warehouse's staging view `warehouse/billed_charges` that reads it.

Unlike `raw_snapshots`, a past partition CAN be materialized: Vast.ai keeps bills, so a
backfill of months from the UI fetches each day's bill (one run for the whole range, days
one after another, politely paced). Each partition fetches every account's bill of that day
and replaces what was stored (bills settle late). `charges_schedule` refetches the last
three days once a day.
"""


import warnings
from datetime import date, timedelta

import dagster as dg

from assets.collection import COLLECT_RETRY, pipeline_failure
from assets.partitions import DAILY
from assets.resources import VastPipelineResource
from pipeline.billing import DEFAULT_DAYS_BACK, BillDayResult, collect_charges
from pipeline.core.errors import PipelineError

# Once a day, after midnight UTC, when yesterday's bill has mostly settled.
CHARGES_CRON = "30 2 * * *"


# A backfill of months is one run (days one after another); Dagster 1.13 calls the
# asset's `backfill_policy` parameter beta and warns on every import, which would print on
# the console of each command that loads the assets.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    _asset = dg.asset(partitions_def=DAILY, retry_policy=COLLECT_RETRY,
                      group_name="collection", kinds={"python", "parquet"},
                      backfill_policy=dg.BackfillPolicy.single_run())


@_asset
def landed_billed_charges(context: dg.AssetExecutionContext,
                   vast: VastPipelineResource) -> dg.MaterializeResult:
    """Vast.ai's bill of each UTC day of the run (all accounts), replacing what was stored.

    Writes `raw_charges/` and `parquet/billed_charges|billed_quarantine|billed_days/`.
    A backfill runs its days in one process, one after another; a failure stops at the
    failing day (days before it stay landed, that day keeps its old bill).
    """
    days = [date.fromisoformat(key) for key in context.partition_keys]

    def landed(result: BillDayResult) -> None:
        context.log.info(f"{result.account} {result.change_line()} ({result.contracts} "
                         f"contracts, {result.pages} pages, {result.retries} retries)")

    try:
        results = collect_charges(vast.settings(), days, progress=landed)
    except PipelineError as exc:
        raise pipeline_failure(exc, context) from None
    return dg.MaterializeResult(metadata=_metadata(results))


def _metadata(results: list[BillDayResult]) -> dict[str, object]:
    changes = "\n".join(f"- {r.account} {r.change_line()}" for r in results)
    return {
        "days": len({r.day for r in results}),
        "accounts": ", ".join(sorted({r.account for r in results})),
        "contracts": sum(r.contracts for r in results),
        "total": dg.MetadataValue.float(round(sum(r.total for r in results), 3)),
        "changed_days": sum(1 for r in results
                            if r.previous_total is not None
                            and round(r.previous_total, 3) != round(r.total, 3)),
        "quarantined": sum(r.quarantined for r in results),
        "pages": sum(r.pages for r in results),
        "requests": sum(r.requests for r in results),
        "retries": sum(r.retries for r in results),
        "change": dg.MetadataValue.md(changes or "-"),
    }


charges_job = dg.define_asset_job(
    "charges_job", selection=dg.AssetSelection.assets(landed_billed_charges),
    description="Fetch Vast.ai's bill of the chosen days for every account.")


@dg.schedule(job=charges_job, cron_schedule=CHARGES_CRON, execution_timezone="UTC",
             name="charges_schedule", default_status=dg.DefaultScheduleStatus.STOPPED)
def charges_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Refetches the bills of today and the two days before (bills settle late), one run each."""
    today = context.scheduled_execution_time.date()
    days = [today - timedelta(days=back) for back in range(DEFAULT_DAYS_BACK)]
    return [dg.RunRequest(run_key=f"charges-{day}-{today}", partition_key=day.isoformat())
            for day in sorted(days)]
