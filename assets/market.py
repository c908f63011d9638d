"""The market as a Dagster asset: `landed_market_snapshots`, one market snapshot now.

Not partitioned: the market belongs to no account and its search only tells the present,
so each materialization takes one snapshot (the first account's key), writes its raw file
and lands its day (`parquet/market_offers|market_quarantine|market_snapshots/`).
`market_schedule` runs it every `[market] cadence_minutes` (default hourly), STOPPED until
switched on in the UI or with `dagster schedule start market_schedule`.
"""


import dagster as dg

from assets.collection import COLLECT_RETRY, pipeline_failure
from assets.resources import VastPipelineResource
from pipeline.core.config import cadence_cron, load_settings
from pipeline.core.errors import PipelineError
from pipeline.market.collect import MarketSnapshotResult, collect_market
from pipeline.market.settings import market_settings


@dg.asset(retry_policy=COLLECT_RETRY, group_name="market", kinds={"python", "parquet"})
def landed_market_snapshots(context: dg.AssetExecutionContext,
                            vast: VastPipelineResource) -> dg.MaterializeResult:
    """The offers of the GPU models the accounts rent (both offer types, verified or not),
    searched now, kept raw and landed as the market's Parquet history."""
    try:
        result = collect_market(vast.settings())
    except PipelineError as exc:
        raise pipeline_failure(exc, context) from None
    context.log.info(result.summary())
    return dg.MaterializeResult(metadata=market_metadata(result))


def market_metadata(result: MarketSnapshotResult) -> dict[str, object]:
    """What the snapshot took and landed (the counts its log row holds)."""
    landed = result.landed
    return {
        "snapshot_id": result.snapshot_id,
        "snapshot_at": result.snapshot_at.isoformat(),
        "gpu_names": ", ".join(result.gpu_names),
        "requests": result.requests,
        "retries": result.retries,
        "offers": landed.offers if landed else 0,
        "quarantined_records": landed.quarantined_records if landed else 0,
        "quarantined_values": landed.quarantined_values if landed else 0,
        "new_fields": ", ".join(sorted(landed.new_fields)) if landed and landed.new_fields
        else "-",
        "incomplete": result.incomplete,
        "incomplete_reasons": "; ".join(result.incomplete_reasons) or "-",
    }


market_job = dg.define_asset_job(
    "market_job", selection=dg.AssetSelection.assets(landed_market_snapshots),
    description="One market snapshot of the offer search, landed in the raw zone and Parquet.")


@dg.schedule(job=market_job,
             cron_schedule=cadence_cron(market_settings(load_settings()).cadence_minutes),
             execution_timezone="UTC", name="market_schedule",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def market_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Takes a market snapshot every `[market] cadence_minutes` (default 60)."""
    return dg.RunRequest(run_key=f"market-{context.scheduled_execution_time:%Y%m%dT%H%M}")
