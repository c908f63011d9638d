"""Collection: `raw_snapshots` (API -> raw zone) and `landed_instance_snapshots` (raw ->
Parquet history), named apart from the warehouse's staging view `warehouse/instance_snapshots`
that reads that Parquet (see assets/definitions.py).

Both are partitioned by UTC day. Materializing today's `raw_snapshots` partition takes one
snapshot of every account now and appends it to the day. A past day cannot be fetched:
Vast.ai's API only tells the present, so that attempt fails with a sentence saying so, and
`landed_instance_snapshots` for that day re-derives its Parquet from the raw zone, if it was
collected.
"""


from datetime import UTC, date, datetime

import dagster as dg

from assets.partitions import DAILY
from assets.resources import VastPipelineResource
from pipeline.alerts.hooks import after_collection, after_landing
from pipeline.core.errors import PipelineError, RetriesExhaustedError
from pipeline.landing.history import land_pending, rebuild_day
from pipeline.source.collect import collect
from pipeline.warehouse.quality import HISTORY_CHECKS, run_history_checks

# Transient trouble (rate limits, 5xx, timeouts) outlasting the client's own retries gets
# a few more tries a minute apart; a refused key or bad settings fail at once.
COLLECT_RETRY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL,
                               jitter=dg.Jitter.PLUS_MINUS)


CLI_RUN_TAG = "vast_pipeline/cli"


class CollectConfig(dg.Config):
    """Run config of `raw_snapshots`: optionally collect only one account."""

    account: str | None = None


# The Failure's metadata key that carries the error's CLI exit code (2: the user corrects
# something, 1: a run-time failure), so `vast-pipeline collect` exits as any other command.
EXIT_CODE_KEY = "exit_code"


def pipeline_failure(exc: PipelineError, context: dg.AssetExecutionContext) -> dg.Failure:
    """Only transient trouble is retried, and never for a person waiting at the CLI."""
    retry = isinstance(exc, RetriesExhaustedError) and CLI_RUN_TAG not in context.run.tags
    return dg.Failure(description=str(exc), allow_retries=retry,
                      metadata={EXIT_CODE_KEY: exc.exit_code})


@dg.asset(partitions_def=DAILY, retry_policy=COLLECT_RETRY, group_name="collection",
          kinds={"python", "json"})
def raw_snapshots(context: dg.AssetExecutionContext, config: CollectConfig,
                  vast: VastPipelineResource) -> dg.MaterializeResult:
    """Every instance of every account, listed now, kept scrubbed in the raw landing zone."""
    day = date.fromisoformat(context.partition_key)
    today = datetime.now(UTC).date()
    if day != today:
        raise dg.Failure(
            description=(f"Vast.ai's API only tells the present, so instances cannot be listed as "
                         f"of {day}; materialize landed_instance_snapshots for {day} to "
                         "re-derive it from raw snapshots collected then."),
            allow_retries=False)
    try:
        results = collect(vast.settings(), config.account, land=False,
                          report=after_collection)
    except PipelineError as exc:
        raise pipeline_failure(exc, context) from None
    for result in results:
        context.log.info(result.summary())
    return dg.MaterializeResult(metadata={
        "records": sum(r.records for r in results),
        "pages": sum(r.pages for r in results),
        "requests": sum(r.requests for r in results),
        "retries": sum(r.retries for r in results),
        "accounts": ", ".join(r.account for r in results),
        "snapshot_ids": ", ".join(r.snapshot_id for r in results),
    })


@dg.asset(partitions_def=DAILY, deps=[raw_snapshots], group_name="collection",
          kinds={"python", "parquet"},
          check_specs=[dg.AssetCheckSpec(name, asset="landed_instance_snapshots", blocking=False)
                       for name in HISTORY_CHECKS])
def landed_instance_snapshots(context: dg.AssetExecutionContext, vast: VastPipelineResource):
    """One row per instance per snapshot, typed, as hive-partitioned Parquet (one file a day):
    `parquet/instance_snapshots/` and `parquet/snapshots/`, which the warehouse reads.

    Today's partition lands only the raw snapshots it lacks (a scheduled run's cost is the
    new snapshot plus rewriting one day's file); a past day is re-derived whole from raw.
    """
    day = date.fromisoformat(context.partition_key)
    settings = vast.settings()
    store = vast.store()
    derive = land_pending if day == datetime.now(UTC).date() else rebuild_day
    try:
        results = [derive(store, account.name, day) for account in settings.accounts]
    except PipelineError as exc:
        raise pipeline_failure(exc, context) from None
    after_landing(settings, [account.name for account in settings.accounts])
    yield dg.MaterializeResult(metadata=_landing_metadata(results))
    # the checks read the day just derived (and each account's newest snapshot), so a
    # scheduled run costs the same on a year of history as on day one
    for outcome in run_history_checks(store, cadence_minutes=settings.cadence_minutes,
                                      day=day):
        yield dg.AssetCheckResult(
            check_name=outcome.name, passed=outcome.passed, description=outcome.detail,
            metadata=outcome.metadata,
            severity=dg.AssetCheckSeverity.WARN if outcome.severity == "WARN"
            else dg.AssetCheckSeverity.ERROR)


def _landing_metadata(results: list) -> dict[str, object]:
    """Rows, quarantine counts, new fields and a preview, summed over accounts."""
    new_fields = sorted({f for r in results for f in r.new_fields})
    return {
        "snapshots": sum(r.snapshots for r in results),
        "rows": sum(r.rows for r in results),
        "quarantined_records": sum(r.quarantined_records for r in results),
        "quarantined_values": sum(r.quarantined_values for r in results),
        "new_fields": ", ".join(new_fields) or "-",
        "preview": dg.MetadataValue.md(results[0].preview_markdown() if results else "-"),
    }
