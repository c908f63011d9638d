"""Where the pipeline calls alerting: after a collection, after landing, after a build,
from the Dagster run sensors, once after the demo's build, and for `vast-pipeline alerts
test`.

A receiver's failure (or any trouble evaluating alerts) never fails a collection or a
build: each hook logs one line and returns. What was not delivered stays queued.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from pipeline.alerts import engine
from pipeline.alerts.engine import AlertBook, Condition, Delivered, Evaluation, iso
from pipeline.alerts.settings import AlertSettings, Receiver, alert_settings
from pipeline.alerts.webhook import Attempted, get, post_json, posted_urls
from pipeline.core.config import Settings
from pipeline.core.errors import ConfigError, PipelineError
from pipeline.core.secrets import redact
from pipeline.storage.store import Store

log = logging.getLogger("pipeline.alerts")
_MAX_RUN_MESSAGE = 300
# Object-store credentials a failed step's error text may quote (pipeline.storage.objectstore).
_AWS_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@contextmanager
def _never_fail(what: str) -> Iterator[None]:
    """Alerting trouble is one log line, never the caller's failure."""
    try:
        yield
    except PipelineError as exc:  # a sentence written for the user: log it as is
        log.warning("%s", redact(str(exc), posted_urls()))
    except Exception as exc:  # by design: alerting must never break the pipeline
        log.warning("alerts %s were not evaluated: %s", what,
                    redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                           posted_urls()))


def after_collection(settings: Settings, outcomes: Mapping[str, str | None],
                     observed_at: datetime, *, landed: bool) -> Delivered | None:
    """Count each account's success or failure (`collection_failing`), evaluate
    `instance_down` for the accounts whose snapshot `landed`, deliver, then ping the
    heartbeat if every account succeeded. `outcomes` maps account -> error text or None."""
    result = None
    alerts = AlertSettings()
    with _never_fail("after the collection"):
        alerts = alert_settings(settings)

        def evaluate(book: AlertBook) -> list[Evaluation]:
            evaluations = [_collection_failing(book, alerts, account, error, observed_at)
                           for account, error in outcomes.items()]
            if landed:
                evaluations += _instance_down(settings, alerts, [a for a, e in outcomes.items()
                                                                 if e is None])
            return evaluations

        result = engine.run(Store(settings.home), alerts, evaluate, point="after_collection")
    if outcomes and all(error is None for error in outcomes.values()):
        heartbeat(alerts)
    return result


def after_landing(settings: Settings, accounts: list[str],
                  alerts: AlertSettings | None = None) -> Delivered | None:
    """`instance_down` once the newest snapshots are in the Parquet history (Dagster's
    `instance_snapshots` step, which lands what `raw_snapshots` collected). `alerts`
    defaults to the settings' own."""
    with _never_fail("after landing"):
        chosen = alerts or alert_settings(settings)
        return engine.run(Store(settings.home), chosen,
                          lambda _book: _instance_down(settings, chosen, accounts),
                          point="after_landing")
    return None


def after_build(settings: Settings, alerts: AlertSettings | None = None) -> Delivered | None:
    """The cost rules over the freshly built warehouse (`alerts`: as in `after_landing`)."""
    from pipeline.alerts.build_rules import evaluate_build_rules
    from pipeline.warehouse.query import open_read_only

    with _never_fail("after the build"):
        chosen = alerts or alert_settings(settings)

        def evaluate(_book: AlertBook) -> list[Evaluation]:
            con = open_read_only(settings.home)
            try:
                evaluation = evaluate_build_rules(con, chosen)
            finally:
                con.close()
            return [evaluation] if evaluation else []

        return engine.run(Store(settings.home), chosen, evaluate, point="after_build")
    return None


def after_landing_and_build(settings: Settings, accounts: list[str], *,
                            deliver: bool = True) -> list[Delivered | None]:
    """What a scheduled run evaluates once its snapshots are landed and its warehouse is
    built, in its order and through the same hooks: `instance_down` for `accounts`
    (`after_landing`), then the cost rules (`after_build`). `deliver=False` (the demo,
    whose alerts are about a simulated fleet) records every transition with no receiver
    instead of posting it to the configured ones; what they still have queued stays queued.
    """
    alerts = None
    if not deliver:
        with _never_fail("for the run"):
            alerts = replace(alert_settings(settings), receivers=())
    return [after_landing(settings, accounts, alerts), after_build(settings, alerts)]


def run_finished(settings: Settings, job: str, run_id: str, *, failed: bool,
                 message: str = "", at: datetime | None = None) -> Delivered | None:
    """`run_failed/<job>` fires when a run of `job` fails, resolves when one succeeds."""
    at = at or datetime.now(UTC)
    key = f"run_failed/{job}"
    conditions: tuple[Condition, ...] = ()
    alerts = AlertSettings()
    with _never_fail(f"for the run of {job}"):
        alerts = alert_settings(settings)
    if failed and alerts.enabled("run_failed"):
        text = redact(" ".join(message.split()), [*posted_urls(), *_held_secrets(settings, alerts)])
        if len(text) > _MAX_RUN_MESSAGE:
            text = text[:_MAX_RUN_MESSAGE - 3] + "..."
        subject = f"Dagster job {job}"
        summary = (f"{subject} failed (run {run_id[:8]} at {at:%Y-%m-%d %H:%M} UTC): "
                   f"{text or 'no message'}; open the run in the Dagster UI for its logs.")
        conditions = (Condition("run_failed", key, None, None, summary, subject, at),)
    evaluation = Evaluation(rules=("run_failed",), accounts=None, conditions=conditions,
                            observed_at=at, keys=frozenset({key}))
    with _never_fail(f"for the run of {job}"):
        return engine.run(Store(settings.home), alerts, lambda _book: [evaluation],
                          point="run_finished")
    return None


def _held_secrets(settings: Settings, alerts: AlertSettings) -> list[str]:
    """Every secret this process holds that a failed run's text could quote: webhook and
    heartbeat URLs, each account's API key, the object-store credentials. The text goes
    to a chat channel and the alert log, so none of them may survive in it."""
    return [*alerts.secrets(), *(a.api_key for a in settings.accounts),
            *(os.environ.get(name, "") for name in _AWS_SECRET_ENV)]


def heartbeat(alerts: AlertSettings) -> Attempted | None:
    """GET the dead-man's-switch URL, if one is set; a miss is one log line."""
    if not alerts.heartbeat_url:
        return None
    tried = get(alerts.heartbeat_url, timeout_seconds=alerts.timeout_seconds)
    if not tried.accepted:
        log.warning("the heartbeat URL was not reached (%s); the next collection pings again",
                    tried.error)
    return tried


def send_test(settings: Settings, receiver: str | None = None
              ) -> list[tuple[Receiver, Attempted]]:
    """POST a test message to each receiver (or the named one); nothing is queued."""
    alerts = alert_settings(settings)
    if not alerts.receivers:
        raise ConfigError("No alert receiver is configured: export "
                          "VAST_PIPELINE_ALERT_WEBHOOK or add [[alerts.receivers]] to "
                          f"{settings.config_named}.")
    chosen = [r for r in alerts.receivers if receiver is None or r.name == receiver]
    if not chosen:
        known = ", ".join(r.name for r in alerts.receivers)
        raise ConfigError(f"No alert receiver named {receiver!r} (known: {known}).")
    out = []
    for r in chosen:
        now = datetime.now(UTC)
        text = (f"Test message from vast-pipeline to receiver {r.name}: alerts reach this "
                "channel.")
        payload = {"id": f"test-{now:%Y%m%dT%H%M%S}", "rule": "test", "state": "firing",
                   "key": f"test/{r.name}", "account": None, "instance_id": None,
                   "summary": text, "text": text, "started_at": iso(now),
                   "observed_at": iso(now), "source": "vast-pipeline"}
        out.append((r, post_json(r.url, payload, attempts=alerts.delivery_attempts,
                                 backoff_seconds=alerts.retry_backoff_seconds,
                                 timeout_seconds=alerts.timeout_seconds)))
    return out


def _collection_failing(book: AlertBook, alerts: AlertSettings, account: str,
                        error: str | None, observed_at: datetime) -> Evaluation:
    counts = book.collection(account)
    if error is None:
        counts.clear()
        counts["failures"] = 0
    else:
        counts["failures"] += 1
        counts.setdefault("since", iso(observed_at))
        counts["error"] = error
    conditions: tuple[Condition, ...] = ()
    if alerts.enabled("collection_failing") and counts["failures"] >= \
            alerts.collection_failing_runs:
        since = engine.parse_iso(counts["since"])
        subject = f"Collection of account {account}"
        summary = (f"{subject} failed {counts['failures']} times in a row since "
                   f"{since:%Y-%m-%d %H:%M} UTC, so its history has a gap: {error}")
        conditions = (Condition("collection_failing", f"collection_failing/{account}", account,
                                None, summary, subject, since),)
    return Evaluation(rules=("collection_failing",), accounts=(account,),
                      conditions=conditions, observed_at=observed_at)


def _instance_down(settings: Settings, alerts: AlertSettings,
                   accounts: list[str]) -> list[Evaluation]:
    from pipeline.alerts.history_rules import RULE, evaluate_instance_down

    store = Store(settings.home)
    out = []
    for account in accounts:
        evaluation = evaluate_instance_down(store, account, alerts.instance_down_minutes)
        if evaluation is None:
            continue
        if not alerts.enabled(RULE):
            evaluation = Evaluation(rules=(RULE,), accounts=(account,), conditions=(),
                                    observed_at=evaluation.observed_at)
        out.append(evaluation)
    return out
