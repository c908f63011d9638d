"""Running the collection assets in-process, so CLI runs are recorded in Dagster's history.

`vast-pipeline collect` calls `collect_in_dagster`: the same assets the schedule runs,
executed in this process against the Dagster instance at $DAGSTER_HOME (default
$VAST_PIPELINE_HOME/dagster, which `make dagster` also uses), so the UI shows every run.
"""


import os
from contextlib import nullcontext
from datetime import UTC, datetime

import dagster as dg

from assets.collection import (
    CLI_RUN_TAG,
    EXIT_CODE_KEY,
    landed_instance_snapshots,
    raw_snapshots,
)
from assets.partitions import DAILY
from assets.resources import default_resource
from assets.storage_errors import instance_storage_errors
from pipeline.core.config import Settings
from pipeline.core.errors import PipelineError
from pipeline.startup import prepare_dagster_home

# The run's own log lines would bury the one sentence a CLI user needs; they stay in the
# run's record (Dagster UI) and show with --debug.
QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance at $DAGSTER_HOME, defaulting to <home>/dagster."""
    os.environ["DAGSTER_HOME"] = str(prepare_dagster_home(settings))
    return dg.DagsterInstance.get()


def collect_in_dagster(settings: Settings, account: str | None = None, *,
                       verbose: bool = False,
                       instance: dg.DagsterInstance | None = None) -> list[str]:
    """Materialize today's collection partition; returns lines to print, raises on failure.

    `instance` defaults to `dagster_instance(settings)`, opened and closed here (`bench
    collect` passes its own, to time setting it up apart from the run).
    """
    key = DAILY.get_partition_key_for_timestamp(datetime.now(UTC).timestamp())
    with instance_storage_errors(quiet=not verbose), (
            nullcontext(instance) if instance else dagster_instance(settings)) as opened:
        result = dg.materialize(
            [raw_snapshots, landed_instance_snapshots], partition_key=key, instance=opened,
            resources={"vast": default_resource()}, raise_on_error=False,
            tags={CLI_RUN_TAG: "true"},
            run_config={"ops": {"raw_snapshots": {"config": {"account": account}}},
                        **({} if verbose else QUIET_LOGGERS)})
    if not result.success:
        raise _failure(result)
    return _summary_lines(result)


def _failure(result: dg.ExecuteInProcessResult) -> PipelineError:
    """The failed step's sentence, with the exit code of the error that failed it."""
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            error = PipelineError(data.user_failure_data.description)
            code = data.user_failure_data.metadata.get(EXIT_CODE_KEY)
            error.exit_code = int(code.value) if code is not None else error.exit_code
            return error
        if data.error:
            return PipelineError(data.error.message.strip().splitlines()[-1])
    return PipelineError("the collection run failed; run with --debug or open the Dagster UI "
                         "for details")


def _summary_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    lines = []
    for mat in result.get_asset_materialization_events():
        materialization = mat.step_materialization_data.materialization
        meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()
                if k != "preview"}
        shown = ", ".join(f"{k}={v}" for k, v in meta.items())
        lines.append(f"{materialization.asset_key.to_user_string()}: {shown}")
    for check in result.get_asset_check_evaluations():
        lines.append(f"check {check.check_name}: {_verdict(check)} - {check.description}")
    lines.append(f"dagster run {result.run_id} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    return lines


def _verdict(check: dg.AssetCheckEvaluation) -> str:
    """`passed`; a failed WARN-severity check is a `warning` (as the Dagster UI shows it:
    the data landed and downstream work goes on); a failed ERROR check `FAILED`."""
    if check.passed:
        return "passed"
    return "warning" if check.severity == dg.AssetCheckSeverity.WARN else "FAILED"
