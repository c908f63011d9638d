"""Dagster run sensors posting to the alert receivers: a failed run of any job fires
`run_failed/<job>`, the next successful run of that job resolves it.

Thin: the message, the once-per-transition state, the queue and the delivery are
`pipeline.alerts`, shared with the collection and build hooks. Both sensors start RUNNING
(alerting that must be switched on is alerting nobody gets); they act once the Dagster
daemon runs, as under `dagster dev`.
"""


import dagster as dg

from pipeline.alerts.hooks import run_finished
from pipeline.config import load_settings


@dg.run_failure_sensor(name="alert_on_run_failure", monitor_all_code_locations=True,
                       default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Posts a failed run of any job to the alert receivers.")
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    run_finished(load_settings(), run.job_name, run.run_id, failed=True, message=_why(context))


def _why(context: dg.RunFailureSensorContext) -> str:
    """The failed steps' own sentences (a `Failure` description, else the error's last
    line), which say more than the run's generic "Steps failed" message."""
    reasons = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            reasons.append(f"{event.step_key}: {data.user_failure_data.description}")
        elif data.error:
            reasons.append(f"{event.step_key}: {data.error.message.strip().splitlines()[-1]}")
    return "; ".join(reasons) or context.failure_event.message or ""


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="resolve_on_run_success",
                      monitor_all_code_locations=True,
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Resolves a job's run_failed alert when a run succeeds.")
def resolve_on_run_success(context: dg.RunStatusSensorContext) -> None:
    run = context.dagster_run
    run_finished(load_settings(), run.job_name, run.run_id, failed=False)
