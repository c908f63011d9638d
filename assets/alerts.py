"""Dagster run sensors posting to the alert receivers: a failed run of any job fires
`run_failed/<job>`, the next successful run of that job resolves it.

Thin: the message, the once-per-transition state, the queue and the delivery are
`pipeline.alerts`, shared with the collection and build hooks. Both sensors start RUNNING
(alerting that must be switched on is alerting nobody gets); they act once the Dagster
daemon runs, as under `dagster dev`.
"""


from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # Dagster does not export the type; only its attributes are used
    from dagster._core.execution.plan.objects import StepFailureData

from pipeline.alerts.hooks import run_finished
from pipeline.startup import load_settings


@dg.run_failure_sensor(name="alert_on_run_failure", monitor_all_code_locations=True,
                       default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Posts a failed run of any job to the alert receivers.")
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    run_finished(load_settings(), run.job_name, run.run_id, failed=True, message=_why(context))


def _why(context: dg.RunFailureSensorContext) -> str:
    """The failed steps' own sentences (a `Failure` description, else the error's last
    line), which say more than the run's generic "Steps failed" message."""
    reasons = [step_reason(event.step_key, event.step_failure_data)
               for event in context.get_step_failure_events()]
    return "; ".join(r for r in reasons if r) or context.failure_event.message or ""


def step_reason(step_key: str, data: "StepFailureData") -> str:
    """One step's failure as `step: sentence`; an error without a message (it happens)
    still says which error it was, rather than failing the sensor and losing the alert."""
    if data.user_failure_data and data.user_failure_data.description:
        return f"{step_key}: {data.user_failure_data.description}"
    if not data.error:
        return ""
    lines = data.error.message.strip().splitlines()
    return f"{step_key}: {lines[-1] if lines else _no_message(data.error.cls_name)}"


def _no_message(cls_name: str | None) -> str:
    return f"the step raised {cls_name or 'an error'} without a message"


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="resolve_on_run_success",
                      monitor_all_code_locations=True,
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Resolves a job's run_failed alert when a run succeeds.")
def resolve_on_run_success(context: dg.RunStatusSensorContext) -> None:
    run = context.dagster_run
    run_finished(load_settings(), run.job_name, run.run_id, failed=False)
