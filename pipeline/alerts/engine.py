"""Alert state, transitions and delivery: once per transition, in order, nothing lost.

How it works (the Alertmanager contract, without a server):
- An evaluation point (after a collection, after a build, a failed Dagster run) says which
  conditions hold now *within its scope* (rules x accounts). A condition not yet firing
  becomes a `firing` transition; a firing alert in scope whose condition no longer holds
  becomes a `resolved` one. A firing alert is never sent again while it keeps firing.
- The state (firing alerts, collection failure counts, the outbox of messages not yet
  accepted) is one small JSON file in the data home, rewritten atomically under a lock, so
  it survives restarts and two processes never both send a transition.
- Every transition is queued once per receiver (by NAME: the URL is never stored) and the
  queue is delivered in order; what a receiver still refuses after the retries stays queued
  for the next run, and later messages to that receiver wait behind it.
- Every evaluation (when, which rules and accounts, data as of which snapshot, how many
  firing), transition and delivery attempt is appended to the alert log: one write-once
  NDJSON file per run under `alerts/log/day=D/`, read by the warehouse views
  `alert_evaluations`, `alerts` and `alerts_firing` (live, so a report written right after
  an evaluation sees it) and by `vast-pipeline alerts`. So that a year of runs every 15
  minutes is not 100,000 files for every reader, the first run of a day merges each past
  day's files into one new file whose first record lists the files it replaces, then
  deletes them; readers skip a listed file, so one an interrupted run left is not read
  twice.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from filelock import FileLock, Timeout

from pipeline.alerts.settings import AlertSettings
from pipeline.alerts.webhook import post_json
from pipeline.core.errors import DataError
from pipeline.storage.alertlog import ALERT_LOG_DIR
from pipeline.storage.datasets import ALERT_LOG, dataset
from pipeline.storage.store import Store

log = logging.getLogger("pipeline.alerts")

STATE_VERSION = 1
STATE_FILE = dataset("alert_state").folder
LOG_DIR = ALERT_LOG_DIR
# A zero-byte file under the log's glob, so that the glob matches before the first record.
COMPACTED = "compacted"
# Days the daily merge looks at again, for a file a writer with a late clock added there.
COMPACT_REVISIT_DAYS = 2
# The state id of a state file written before states had one (its log records have none).
LEGACY_STATE_ID = ""
LOCK_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class Condition:
    """A problem true now; `subject` names what it is about for the resolved message."""

    rule: str
    key: str
    account: str | None
    instance_id: int | None
    summary: str
    subject: str
    started_at: datetime


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation point knows: every condition holding now, within its scope.

    `accounts=None` covers every account (and alerts about no account). `resolutions`
    maps keys of alerts known to have cleared to why (a clause after the subject);
    `otherwise` is the reason for the others (else the rule's generic one).
    """

    rules: tuple[str, ...]
    accounts: tuple[str, ...] | None
    conditions: tuple[Condition, ...]
    observed_at: datetime
    resolutions: Mapping[str, str] = field(default_factory=dict)
    otherwise: str = ""
    keys: frozenset[str] | None = None  # narrower still: only these alert keys

    def covers(self, alert: Mapping[str, Any]) -> bool:
        return (alert["rule"] in self.rules
                and (self.accounts is None or alert["account"] in self.accounts)
                and (self.keys is None or alert["key"] in self.keys))


# Why an alert of a rule resolved, when the evaluation has nothing more specific.
RESOLVED_BECAUSE = {
    "instance_down": "is running again",
    "collection_failing": "succeeded again",
    "idle_gpu": "is no longer a billed idle GPU",
    "stopped_storage": "is no longer stopped and paying for storage",
    "credit_runway": "has more runway than the threshold again",
    "spend_spike": "burns less than the threshold over its 7-day average again",
    "bill_difference": "now matches the estimate within the threshold",
    "run_failed": "ran successfully again",
}
SWITCHED_OFF = "is no longer watched (the rule was switched off)"


def iso(moment: datetime | None) -> str | None:
    """UTC ISO-8601 with a Z, the form every payload and log record uses."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def human_duration(delta: timedelta) -> str:
    """'45 min', '3 h 10 min', '2 d 4 h': how long, as a person reads it."""
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def iso_precise(moment: datetime) -> str:
    """UTC ISO-8601 to the microsecond: when an evaluation ran (two can share a second)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _empty_state() -> dict[str, Any]:
    """A fresh state. Its `state_id` is on every log record written under it, so the
    warehouse tells what fires now from the transitions of the current state only (a state
    moved aside took its firing alerts with it)."""
    return {"version": STATE_VERSION, "state_id": uuid.uuid4().hex[:12], "seq": 0,
            "firing": {}, "collections": {}, "outbox": [], "log_compacted_through": None}


@dataclass
class Delivered:
    """The deliveries of one run, for the caller's metadata and the CLI."""

    transitions: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0
    queued: int = 0


class AlertBook:
    """The alert state of one data home, held under its lock while a run changes it."""

    def __init__(self, store: Store, settings: AlertSettings) -> None:
        self.store = store
        self.settings = settings
        self.state = _empty_state()
        self._log: list[dict[str, Any]] = []

    # -- state -------------------------------------------------------------------------
    def load(self) -> None:
        self.state = read_state(self.store)

    def save(self) -> None:
        """Atomically rewrite the state, then append this run's new log records."""
        data = json.dumps(self.state, indent=1, sort_keys=True).encode()
        self.store.write_bytes_atomic(self.store.path(STATE_FILE), data)
        if self._log:
            now = datetime.now(UTC)
            name = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.ndjson"
            path = f"{self.store.partition_dir(ALERT_LOG, None, now.date())}/{name}"
            body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self._log)
            self.store.write_bytes_atomic(path, body.encode())
            self._log = []

    def compact_log(self, today: date | None = None) -> None:
        """Once a day (the first run after midnight UTC), merge each past day's log files
        into one (`compact_day`): the days since the last merge and a few before it."""
        yesterday = (today or datetime.now(UTC).date()) - timedelta(days=1)
        done = self.state.get("log_compacted_through")
        if done is not None and date.fromisoformat(done) >= yesterday:
            return
        start = (date.fromisoformat(done) - timedelta(days=COMPACT_REVISIT_DAYS)
                 if done is not None else date.min)
        for day in log_days(self.store):
            if start <= day <= yesterday:
                compact_day(self.store, day)
        self.state["log_compacted_through"] = yesterday.isoformat()

    @property
    def firing(self) -> dict[str, dict[str, Any]]:
        return self.state["firing"]

    def collection(self, account: str) -> dict[str, Any]:
        return self.state["collections"].setdefault(account, {"failures": 0})

    # -- transitions -------------------------------------------------------------------
    def record(self, evaluation: Evaluation, *, point: str, run_id: str
               ) -> list[dict[str, Any]]:
        """Compare an evaluation with what fires; queue and log each transition, then log
        the evaluation itself (made at `point`, one of the run `run_id`)."""
        transitions = self._transitions(evaluation)
        fired = sum(1 for t in transitions if t["state"] == "firing")
        self._log.append({
            "record": "evaluation", "evaluation_id": uuid.uuid4().hex[:16], "run_id": run_id,
            "point": point, "evaluated_at": iso_precise(datetime.now(UTC)),
            "observed_at": iso(evaluation.observed_at), "rules": list(evaluation.rules),
            "rules_switched_off": [r for r in evaluation.rules if not self.settings.enabled(r)],
            "accounts": None if evaluation.accounts is None else sorted(evaluation.accounts),
            "keys": None if evaluation.keys is None else sorted(evaluation.keys),
            "firing_in_scope": sum(1 for a in self.firing.values() if evaluation.covers(a)),
            "firing_total": len(self.firing), "fired": fired,
            "resolved": len(transitions) - fired, "state_id": self.state["state_id"]})
        return transitions

    def _transitions(self, evaluation: Evaluation) -> list[dict[str, Any]]:
        now_keys = {c.key for c in evaluation.conditions}
        out = []
        for key, alert in sorted(self.firing.items()):
            if evaluation.covers(alert) and key not in now_keys:
                out.append(self._resolve(alert, evaluation))
        for condition in evaluation.conditions:
            if condition.rule not in evaluation.rules:
                raise ValueError(f"{condition.key} is outside the evaluation's rules")
            alert = self.firing.get(condition.key)
            if alert is None:
                out.append(self._fire(condition, evaluation.observed_at))
            else:  # still firing: keep it current for `vast-pipeline alerts`, send nothing
                alert.update(summary=condition.summary, observed_at=iso(evaluation.observed_at))
        return out

    def _fire(self, c: Condition, observed_at: datetime) -> dict[str, Any]:
        started = min(c.started_at, observed_at)
        self.firing[c.key] = {
            "rule": c.rule, "key": c.key, "account": c.account, "instance_id": c.instance_id,
            "summary": c.summary, "subject": c.subject, "started_at": iso(started),
            "fired_at": iso(observed_at), "observed_at": iso(observed_at)}
        return self._transition(self.firing[c.key], "firing", c.summary, observed_at)

    def _resolve(self, alert: dict[str, Any], evaluation: Evaluation) -> dict[str, Any]:
        del self.firing[alert["key"]]
        if not self.settings.enabled(alert["rule"]):
            because = SWITCHED_OFF
        else:
            because = (evaluation.resolutions.get(alert["key"]) or evaluation.otherwise
                       or RESOLVED_BECAUSE.get(alert["rule"], "is back to normal"))
        lasted = evaluation.observed_at - parse_iso(alert["started_at"])
        summary = f"Resolved after {human_duration(lasted)}: {alert['subject']} {because}."
        return self._transition(alert, "resolved", summary, evaluation.observed_at)

    def _transition(self, alert: dict[str, Any], state: str, summary: str,
                    observed_at: datetime) -> dict[str, Any]:
        self.state["seq"] += 1
        payload = {
            "id": f"{self.state['seq']:08d}-{uuid.uuid4().hex[:8]}",
            "rule": alert["rule"], "state": state, "key": alert["key"],
            "account": alert["account"], "instance_id": alert["instance_id"],
            "summary": summary, "text": summary, "started_at": alert["started_at"],
            "observed_at": iso(observed_at), "source": "vast-pipeline"}
        receivers = [r.name for r in self.settings.receivers]
        for name in receivers:
            self.state["outbox"].append({"seq": self.state["seq"], "receiver": name,
                                         "payload": payload, "attempts": 0, "last_error": ""})
        self._log.append({"record": "transition", "transition_id": payload["id"],
                          "seq": self.state["seq"], **{k: payload[k] for k in (
                              "rule", "state", "key", "account", "instance_id", "summary",
                              "started_at", "observed_at")},
                          "receivers": receivers, "state_id": self.state["state_id"]})
        return payload

    # -- delivery ----------------------------------------------------------------------
    def deliver(self) -> Delivered:
        """Send the outbox in order; a receiver that refuses keeps the rest of its queue."""
        result = Delivered()
        blocked: dict[str, str] = {}
        waiting: list[dict[str, Any]] = []
        for item in sorted(self.state["outbox"], key=lambda i: i["seq"]):
            receiver = self.settings.receiver(item["receiver"])
            if receiver is None or item["receiver"] in blocked:
                waiting.append(item)
                continue
            s = self.settings
            tried = post_json(receiver.url, item["payload"], attempts=s.delivery_attempts,
                              backoff_seconds=s.retry_backoff_seconds,
                              timeout_seconds=s.timeout_seconds)
            item["attempts"] += tried.attempts
            self._log.append({
                "record": "delivery", "transition_id": item["payload"]["id"],
                "receiver": item["receiver"], "attempted_at": iso(datetime.now(UTC)),
                "attempts": tried.attempts, "accepted": tried.accepted,
                "status_code": tried.status_code, "error": tried.error})
            if tried.accepted:
                result.accepted += 1
                continue
            item["last_error"] = tried.error
            blocked[item["receiver"]] = tried.error
            waiting.append(item)
        self.state["outbox"] = waiting
        result.queued = len(waiting)
        for name, error in blocked.items():
            queued = sum(1 for i in waiting if i["receiver"] == name)
            log.warning("alert receiver %s did not accept a message (%s); %d message(s) stay "
                        "queued for the next run", name, error, queued)
        return result


@contextmanager
def _locked(store: Store) -> Iterator[None]:
    """The home's alert lock: a file lock, or on an object store a lease whose holder's
    writes are conditional (a lost race fails the run instead of overwriting)."""
    if store.lock_dir is None:
        with store.object_lease("alerts", LOCK_TIMEOUT_SECONDS, "The alert state"):
            yield
        return
    store.lock_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(store.lock_dir / "alerts.lock"))
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_SECONDS)
    except Timeout:
        raise DataError(f"The alert state stayed locked by another process for "
                        f"{LOCK_TIMEOUT_SECONDS:.0f} s; alerts are evaluated again next "
                        "run.") from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def alert_book(store: Store, settings: AlertSettings) -> Iterator[AlertBook]:
    """The home's alert state, loaded under its lock and saved on a clean exit."""
    with _locked(store):
        book = AlertBook(store, settings)
        book.load()
        yield book
        book.compact_log()
        book.save()


def run(store: Store, settings: AlertSettings,
        evaluate: Callable[[AlertBook], list[Evaluation]], *, point: str) -> Delivered:
    """Under the lock: evaluate, record the transitions and the evaluations, save, deliver
    the outbox, save. `point` names where the pipeline evaluated (e.g. `after_build`)."""
    result = Delivered()
    run_id = uuid.uuid4().hex[:12]
    with alert_book(store, settings) as book:
        for evaluation in evaluate(book):
            result.transitions += book.record(evaluation, point=point, run_id=run_id)
        book.save()  # queued and logged before the first byte goes out: nothing lost
        delivered = book.deliver()
        result.accepted, result.queued = delivered.accepted, delivered.queued
    return result


def read_state(store: Store) -> dict[str, Any]:
    """The saved state (a fresh one when there is none yet); read without the lock for
    display, under it by `AlertBook.load`. A corrupt file is a `DataError` rather than a
    silent reset: its queued messages would be lost without a word."""
    path = store.path(STATE_FILE)
    if not store.exists(path):
        return _empty_state()
    try:
        state = json.loads(store.read_bytes(path))
    except ValueError:  # invalid JSON or bytes that are not text
        state = None
    if not isinstance(state, dict):
        raise DataError(f"The alert state {store.uri(path)} is not a valid JSON object: "
                        "move it aside (keep it to see what was queued) and rerun; the next "
                        "run starts a fresh state, so alerts whose condition still holds "
                        "fire again.")
    merged = {**_empty_state(), **state}
    if "state_id" not in state:  # written before states had an id: keep its log's (none)
        merged["state_id"] = LEGACY_STATE_ID
    return merged


def read_log(store: Store, since: date, until: date | None = None) -> list[dict[str, Any]]:
    """Log records of the days from `since` to `until` (default: today, UTC), in write
    order, each once."""
    records: list[dict[str, Any]] = []
    day, until = since, until or datetime.now(UTC).date()
    while day <= until:
        records += [r for _name, day_records in _day_files(store, day) for r in day_records
                    if r.get("record") != COMPACTED]
        day += timedelta(days=1)
    return records


def _file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _day_files(store: Store, day: date) -> list[tuple[str, list[dict[str, Any]]]]:
    """(file, records) of one day's log files in name (= write) order, without the files
    a merged file lists: those are what it replaced."""
    files = []
    for path in store.list_files(store.partition_dir(ALERT_LOG, None, day), ".ndjson"):
        text = store.read_bytes(path).decode()
        files.append((path, [json.loads(line) for line in text.splitlines() if line.strip()]))
    merged = {name for _path, records in files for r in records
              if r.get("record") == COMPACTED for name in r["files"]}
    return [(path, records) for path, records in files if _file_name(path) not in merged]


def log_days(store: Store) -> list[date]:
    """The days that have a folder in the alert log."""
    return [day for _, day in store.list_partitions(ALERT_LOG)]


def compact_day(store: Store, day: date) -> None:
    """Merge one day's log files into one new file, then delete them.

    Write-once all the same: the new file is written whole (atomically) and never changed;
    its first record lists every file it replaces (and those they had replaced), so a
    reader skips them from the moment it exists, and a deletion an interrupted run missed
    is made by the next merge.
    """
    directory = store.partition_dir(ALERT_LOG, None, day)
    paths = store.list_files(directory, ".ndjson")
    live = _day_files(store, day)
    replaced = [p for p in paths if p not in {path for path, _records in live}]
    if len(live) > 1:
        names = {_file_name(path) for path, _records in live}
        names |= {n for _path, records in live for r in records
                  if r.get("record") == COMPACTED for n in r["files"]}
        body = [{"record": COMPACTED, "files": sorted(names)}]
        body += [r for _path, records in live for r in records if r.get("record") != COMPACTED]
        # named by its first file's time, so it sorts where its records were written
        stamp = _file_name(live[0][0]).split("-", 1)[0]
        target = f"{directory}/{stamp}-{COMPACTED}-{uuid.uuid4().hex[:8]}.ndjson"
        store.write_bytes_atomic(
            target, "".join(json.dumps(r, sort_keys=True) + "\n" for r in body).encode())
        replaced += [path for path, _records in live]
    for path in replaced:
        store.delete(path)
