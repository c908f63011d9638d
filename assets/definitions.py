"""The Dagster code location: assets, checks, jobs, schedule and the automation sensor.

Graph: raw_snapshots -> landed_instance_snapshots -> warehouse/<model> ... -> reports, and
landed_billed_charges -> the warehouse models reading bills.

Asset keys: a Python asset that writes the history is `landed_<dataset>` (the Parquet it
lands), a SQL model is `warehouse/<table>` (the table analysts query). So the staging views
`warehouse/instance_snapshots` and `warehouse/billed_charges` read what
`landed_instance_snapshots` and `landed_billed_charges` wrote, and no two assets share a
name in the UI.
- `collect_schedule` (every cadence minutes, default 15; STOPPED until switched on in the UI
  or with `dagster schedule start collect_schedule`) materializes today's partition of the
  collection assets.
- `charges_schedule` (daily, STOPPED by default) refetches the bills of the last 3 days.
- `market_schedule` (every `[market] cadence_minutes`, default hourly; STOPPED by default)
  takes one market snapshot (`landed_market_snapshots`, assets/market.py).
- `alert_on_run_failure` / `resolve_on_run_success` post failed runs of any job to the
  alert receivers (pipeline.alerts) and resolve them on the job's next success.
- The warehouse and reports follow eagerly through the automation sensor (RUNNING by
  default; it acts once the Dagster daemon runs, as `dagster dev` does).
"""


import dagster as dg

from assets.alerts import alert_on_run_failure, resolve_on_run_success
from assets.charges import charges_job, charges_schedule, landed_billed_charges
from assets.collection import landed_instance_snapshots, raw_snapshots
from assets.market import landed_market_snapshots, market_job, market_schedule
from assets.partitions import DAILY
from assets.reports import cost_report, cost_report_month_to_date, reliability_report
from assets.resources import default_resource
from assets.warehouse import warehouse_models
from pipeline.core.config import cadence_cron
from pipeline.startup import load_settings

collect_job = dg.define_asset_job(
    "collect_job", selection=dg.AssetSelection.assets(raw_snapshots, landed_instance_snapshots),
    executor_def=dg.multi_or_in_process_executor,  # run config picks one (IN_PROCESS below)
    description="One snapshot of every account, landed in the raw zone and the Parquet history.")

build_job = dg.define_asset_job(
    "build_job", selection=dg.AssetSelection.assets(warehouse_models).downstream(),
    description="Build the warehouse models and write the reports.")


# Runs execute their steps in the run worker's own process: a collection is two short
# steps in a row, a build one warehouse step and three quick reports. A process per step
# (Dagster's multiprocess default) cost 6 to 9 s of imports per step under `dagster-daemon`
# on a loaded machine, more than the work itself: a collection run took 25 to 40 s instead
# of 6 to 8 s (tests/deploy/test_daemon.py). The definitions' executor covers the jobs and
# the automation sensor's runs; collect_job keeps the choice in run config, so tests can
# configure its in-process retries.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def _today_partition(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    key = DAILY.get_partition_key_for_timestamp(context.scheduled_execution_time.timestamp())
    return dg.RunRequest(partition_key=key, run_config=IN_PROCESS)


@dg.schedule(job=collect_job, cron_schedule=cadence_cron(load_settings().cadence_minutes),
             execution_timezone="UTC", name="collect_schedule",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def collect_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Takes a snapshot of every account into today's UTC partition, every cadence minutes."""
    return _today_partition(context)


automation_sensor = dg.AutomationConditionSensorDefinition(
    "warehouse_and_reports_follow_collection", target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING)

defs = dg.Definitions(
    assets=[raw_snapshots, landed_instance_snapshots, landed_billed_charges, warehouse_models,
            cost_report, cost_report_month_to_date, reliability_report,
            landed_market_snapshots],
    jobs=[collect_job, build_job, charges_job, market_job],
    schedules=[collect_schedule, charges_schedule, market_schedule],
    sensors=[automation_sensor, alert_on_run_failure, resolve_on_run_success],
    resources={"vast": default_resource()},
    executor=dg.in_process_executor,
)
