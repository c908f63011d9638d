"""Alerts end to end: simulator over HTTP -> collect -> Parquet -> rules -> a real webhook
receiver on 127.0.0.1.

The expected transitions come from the fleet model itself (what the simulator serves),
judged with the reliability models' definition of "down", independently of the SQL the
pipeline runs; the receiver is a real HTTP server whose answers the tests script.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.alerts.engine import read_log, read_state
from pipeline.alerts.hooks import after_collection
from pipeline.alerts.settings import alert_settings
from pipeline.cli import main
from pipeline.core.errors import ConfigError, PipelineError
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import SimulatorServer
from pipeline.source.collect import collect
from pipeline.startup import load_settings
from pipeline.storage.store import Store
from tests.support.alert_receiver import SECRET_PATH, Receiver
from tests.support.warehouse import build_at_cadence

KEY = "alerts-test-key-0123456789"
STEP = timedelta(minutes=15)
SEED, SIZE = 7, 10
SEARCH_FROM = datetime(2026, 3, 2, tzinfo=UTC)
DOWN_MINUTES = 30
FAST = "[alerts]\nretry_backoff_seconds = 0.01\ntimeout_seconds = 5\n"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def write_config(path: Path, alerts: str = FAST) -> Path:
    path.write_text("min_interval_seconds = 0\n" + alerts)
    return path


def make_settings(home: Path, server_url: str, receiver: Receiver | None, config: Path, *,
                  key: str = KEY, heartbeat: bool = False):
    env = {"VAST_PIPELINE_HOME": str(home), "VAST_API_KEY": key, "VAST_URL": server_url,
           "VAST_PIPELINE_CONFIG": str(config)}
    if receiver is not None:
        env["VAST_PIPELINE_ALERT_WEBHOOK"] = receiver.url
        if heartbeat:
            env["VAST_PIPELINE_HEARTBEAT_URL"] = receiver.heartbeat_url
    return load_settings(env)


# -- the oracle: what the fleet model says, judged like instance_intervals ----------------


def states_at(fleet: FleetModel, moment: datetime) -> dict[int, tuple[str | None, str | None]]:
    return {r["id"]: (r["intended_status"], r["actual_status"])
            for r in fleet.clean_records_at(moment)}


def find_outage(fleet: FleetModel) -> tuple[int, datetime, datetime]:
    """A host outage of >= 45 min hitting a running instance, which then runs again."""
    moments = [SEARCH_FROM + i * STEP for i in range(3 * 96)]
    grid = [states_at(fleet, m) for m in moments]
    for i in range(1, len(moments) - 1):
        for iid, (intended, actual) in grid[i].items():
            if intended != "running" or actual not in ("offline", "unknown") \
                    or grid[i - 1].get(iid) != ("running", "running"):
                continue
            j = i
            while j < len(moments) and grid[j].get(iid, ("", ""))[0] == "running" \
                    and grid[j][iid][1] in ("offline", "unknown"):
                j += 1
            if j < len(moments) and j - i >= 3 and grid[j].get(iid) == ("running", "running"):
                return iid, moments[i], moments[j]
    raise AssertionError("the fleet model has no usable outage in the search window")


def expected_transitions(fleet: FleetModel, moments: list[datetime]) -> list[tuple]:
    """(moment, state, key) of every instance_down transition over the collections."""
    settled: dict[int, datetime] = {}
    down_since: dict[int, datetime] = {}
    firing: set[int] = set()
    out = []
    for moment in moments:
        now = states_at(fleet, moment)
        for iid, (_, actual) in now.items():
            if actual not in (None, "created", "loading"):
                settled.setdefault(iid, moment)
        for iid in sorted(set(now) | firing):
            intended, actual = now.get(iid, (None, None))
            down = (iid in now and intended == "running" and iid in settled
                    and actual != "running")
            if not down:
                down_since.pop(iid, None)
                if iid in firing:
                    firing.discard(iid)
                    out.append((moment, "resolved", f"instance_down/default/{iid}"))
                continue
            down_since.setdefault(iid, moment)
            if iid not in firing and moment - down_since[iid] >= timedelta(minutes=DOWN_MINUTES):
                firing.add(iid)
                out.append((moment, "firing", f"instance_down/default/{iid}"))
    return out


def collect_at(settings, clock: Clock, moments: list[datetime]) -> None:
    for moment in moments:
        clock.now = moment
        collect(settings, now=moment, report=after_collection)


def received(receiver: Receiver, rule: str) -> list[tuple]:
    return [(datetime.fromisoformat(b["observed_at"].replace("Z", "+00:00")), b["state"],
             b["key"]) for b in receiver.accepted() if b["rule"] == rule]


def all_bytes_under(home: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


# -- instance_down ------------------------------------------------------------------------


def test_outage_fires_once_and_resolves_once(home: Path, tmp_path: Path) -> None:
    fleet = FleetModel(seed=SEED, size=SIZE)
    instance, first_down, back_up = find_outage(fleet)
    moments = [first_down - 2 * STEP + i * STEP
               for i in range(int((back_up - first_down) / STEP) + 13)]  # to 2 h after
    clock = Clock(moments[0])
    with SimulatorServer({KEY: fleet}, clock=clock) as server, Receiver() as receiver:
        settings = make_settings(home, server.url, receiver, write_config(tmp_path / "c.toml"))
        collect_at(settings, clock, moments)
    got = received(receiver, "instance_down")
    assert got == sorted(expected_transitions(fleet, moments), key=lambda t: (t[0], t[1], t[2]))
    mine = [(state, at) for at, state, key in got if key == f"instance_down/default/{instance}"]
    assert mine == [("firing", first_down + 2 * STEP), ("resolved", back_up)]
    # the stopped, starting and destroyed instances of the window fire nothing
    grid = [states_at(fleet, m) for m in moments]
    stopped = {i for g in grid for i, (intended, _) in g.items() if intended == "stopped"}
    starting = {i for g in grid for i, (_, actual) in g.items()
                if actual in (None, "created", "loading")}
    destroyed = {i for g in grid[:-1] for i in g if i not in grid[-1]}
    alerted = {int(key.rsplit("/", 1)[1]) for _, _, key in got}
    for kind in (stopped, starting, destroyed):
        quiet = kind - alerted
        assert quiet, "the window must hold such an instance for this test to mean anything"
    firing_body = next(b for b in receiver.accepted() if b["key"].endswith(f"/{instance}"))
    assert firing_body["text"] == firing_body["summary"]
    assert str(instance) in firing_body["summary"] and "for 30 min" in firing_body["summary"]
    assert firing_body["instance_id"] == instance and firing_body["account"] == "default"
    assert firing_body["started_at"] == first_down.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert read_state(Store(home))["outbox"] == []
    assert SECRET_PATH.encode() not in all_bytes_under(home)


def test_restart_does_not_resend_a_firing_alert(home: Path, tmp_path: Path) -> None:
    fleet = FleetModel(seed=SEED, size=SIZE)
    instance, first_down, _ = find_outage(fleet)
    moments = [first_down + i * STEP for i in range(3)]  # fires at the third
    config = write_config(tmp_path / "c.toml")
    clock = Clock(moments[0])
    with SimulatorServer({KEY: fleet}, clock=clock) as server, Receiver() as receiver:
        settings = make_settings(home, server.url, receiver, config)
        collect_at(settings, clock, moments)
        fired = [b["key"] for b in receiver.accepted()]
        assert f"instance_down/default/{instance}" in fired
        later = first_down + 3 * STEP  # still down: a new process must send nothing new
        script = textwrap.dedent(f"""
            from datetime import datetime
            from pipeline.alerts.hooks import after_collection
            from pipeline.source.collect import collect
            from pipeline.startup import load_settings
            from pipeline.sim.fleet import FleetModel
            from pipeline.sim.simulator import SimulatorServer
            moment = datetime.fromisoformat({later.isoformat()!r})
            with SimulatorServer({{{KEY!r}: FleetModel(seed={SEED}, size={SIZE})}},
                                 clock=lambda: moment) as server:
                import os
                env = dict(os.environ, VAST_URL=server.url)
                collect(load_settings(env), now=moment, report=after_collection)
        """)
        env = {"VAST_PIPELINE_HOME": str(home), "VAST_API_KEY": KEY,
               "VAST_PIPELINE_CONFIG": str(config), "VAST_PIPELINE_ALERT_WEBHOOK": receiver.url,
               "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
        assert done.returncode == 0, done.stderr
        assert [b["key"] for b in receiver.accepted()] == fired
    assert f"instance_down/default/{instance}" in read_state(Store(home))["firing"]
    assert receiver.url not in done.stdout + done.stderr


def test_instance_down_reads_only_its_lookback_window(home: Path, tmp_path: Path) -> None:
    # A damaged file a month back would fail any query that opened it: the rule must not
    # (its cost is that of the window, not of the history's size).
    fleet = FleetModel(seed=SEED, size=SIZE)
    instance, first_down, _ = find_outage(fleet)
    old_day = (first_down - timedelta(days=30)).date()
    for name in ("instance_snapshots", "snapshots"):
        folder = home / "parquet" / name / "account=default" / f"snapshot_date={old_day}"
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"not parquet at all")
    moments = [first_down + i * STEP for i in range(3)]  # fires at the third
    clock = Clock(moments[0])
    with SimulatorServer({KEY: fleet}, clock=clock) as server, Receiver() as receiver:
        settings = make_settings(home, server.url, receiver, write_config(tmp_path / "c.toml"))
        collect_at(settings, clock, moments)
    assert f"instance_down/default/{instance}" in [b["key"] for b in receiver.accepted()]


# -- collection_failing, heartbeat, delivery ----------------------------------------------


def test_two_failed_collections_fire_and_the_next_success_resolves(home: Path,
                                                                     tmp_path: Path) -> None:
    clock = Clock(SEARCH_FROM)
    config = write_config(tmp_path / "c.toml")
    with SimulatorServer({KEY: FleetModel(seed=SEED, size=3)}, clock=clock) as server, \
            Receiver() as receiver:
        bad = make_settings(home, server.url, receiver, config, key="refused-key-000000000",
                            heartbeat=True)
        good = make_settings(home, server.url, receiver, config, heartbeat=True)
        sent_after = []
        for i in range(2):
            clock.now = SEARCH_FROM + i * STEP
            with pytest.raises(PipelineError):
                collect(bad, now=clock.now, report=after_collection)
            sent_after.append([(b["state"], b["key"]) for b in receiver.accepted()])
        clock.now = SEARCH_FROM + 2 * STEP
        collect(good, now=clock.now, report=after_collection)
    assert sent_after == [[], [("firing", "collection_failing/default")]]
    bodies = [b for b in receiver.accepted() if b["rule"] == "collection_failing"]
    assert [(b["state"], b["key"]) for b in bodies] == [
        ("firing", "collection_failing/default"), ("resolved", "collection_failing/default")]
    assert "failed 2 times in a row" in bodies[0]["summary"]
    assert "key" in bodies[0]["summary"].lower()  # the refusal itself, as the CLI says it
    assert bodies[1]["summary"].startswith("Resolved after 30 min: Collection of account "
                                           "default succeeded again")
    assert bodies[0]["instance_id"] is None and bodies[0]["account"] == "default"
    # the dead-man's switch is pinged after the successful collection only
    assert receiver.gets() == ["/heartbeat/secret-ping-token"]


def failing_collection(settings, moment: datetime) -> None:
    """One collection that fails (its key is refused), as a transition trigger."""
    with pytest.raises(PipelineError):
        collect(settings, now=moment, report=after_collection)


def test_a_receiver_answering_500_gets_the_message_once_it_accepts(home: Path,
                                                                   tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", FAST + "collection_failing_runs = 1\n")
    with SimulatorServer({KEY: FleetModel(seed=SEED, size=3)}) as server, \
            Receiver(answers=[500]) as receiver:
        failing_collection(make_settings(home, server.url, receiver, config, key="refused-1234"),
                           SEARCH_FROM)
    assert [r["status"] for r in receiver.requests] == [500, 200]
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
    assert [b["state"] for b in receiver.accepted()] == ["firing"]
    assert read_state(Store(home))["outbox"] == []
    deliveries = [r for r in read_log(Store(home), SEARCH_FROM.date())
                  if r["record"] == "delivery"]
    assert [(d["attempts"], d["accepted"]) for d in deliveries] == [(2, True)]


def test_a_receiver_down_during_a_run_gets_everything_next_run_in_order(
        home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 logs request lines: the URL must not be there
    config = write_config(tmp_path / "c.toml", FAST + "collection_failing_runs = 1\n")
    receiver = Receiver().start()
    receiver.stop()  # down: connection refused on its port
    clock = Clock(SEARCH_FROM)
    with SimulatorServer({KEY: FleetModel(seed=SEED, size=3)}, clock=clock) as server:
        bad = make_settings(home, server.url, receiver, config, key="refused-1234")
        good = make_settings(home, server.url, receiver, config)
        failing_collection(bad, SEARCH_FROM)                      # fires, undeliverable
        clock.now = SEARCH_FROM + STEP
        collect(good, now=clock.now, report=after_collection)  # resolves, undeliverable
        queued = read_state(Store(home))["outbox"]
        assert [(i["payload"]["state"], i["receiver"]) for i in queued] == [
            ("firing", "default"), ("resolved", "default")]
        warnings = [r.getMessage() for r in caplog.records if r.name == "pipeline.alerts"]
        assert len(warnings) == 2 and "connection was refused" in warnings[0]
        receiver.start()  # back on the same port
        failing_collection(bad, SEARCH_FROM + 2 * STEP)           # fires again: delivered last
    receiver.stop()
    assert [(b["state"], b["observed_at"]) for b in receiver.accepted()] == [
        ("firing", "2026-03-02T00:00:00Z"), ("resolved", "2026-03-02T00:15:00Z"),
        ("firing", "2026-03-02T00:30:00Z")]
    assert read_state(Store(home))["outbox"] == []
    secrets = (receiver.url.encode(), SECRET_PATH.encode(), b"T0SECRET")
    everything = all_bytes_under(home) + caplog.text.encode()
    assert not any(secret in everything for secret in secrets)


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(("snippet", "named"), [
    ("instance_down_minutes = -5", "instance_down_minutes"),
    ("instance_down_minutes = 0", "instance_down_minutes"),
    ('idle_gpu_hours = "six"', "idle_gpu_hours"),
    ("collection_failing_runs = 1.5", "collection_failing_runs"),
    ("collection_failing_runs = 0", "collection_failing_runs"),
    ("spend_spike_ratio = 0.5", "spend_spike_ratio"),
    ("bill_difference_pct = nan", "bill_difference_pct"),
    ("credit_runway_days = true", "credit_runway_days"),
    ("stopped_days = inf", "stopped_days"),
    ("delivery_attempts = 0", "delivery_attempts"),
    ('disabled = ["instance_dwon"]', "instance_dwon"),
    ("colection_failing_runs = 3", "colection_failing_runs"),
    ('receivers = [{ name = "ops", url_env = "OPS_HOOK_UNSET" }]', "OPS_HOOK_UNSET"),
])
def test_every_threshold_is_validated_in_one_sentence(tmp_path: Path, snippet: str,
                                                      named: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[alerts]\n{snippet}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({"VAST_PIPELINE_CONFIG": str(config)})
    message = str(caught.value)
    assert named in message and "\n" not in message and message.endswith(".")


@pytest.mark.parametrize("snippet", [
    "[alerts]\nidle_gpu_hours = -1", "[alerts]\ndisabled = \"idle_gpu\"",
    '[alerts]\ndisabled = ["nope"]', "[alerts]\nidle_gpu = 3", "alerts = 3",
    "[alerts]\nreceivers = 3", '[[alerts.receivers]]\nname = "ops"',
    '[[alerts.receivers]]\nname = "o p"\nurl_env = "U"',
])
def test_a_mistake_in_the_alerts_table_names_the_config_file(tmp_path: Path,
                                                              snippet: str) -> None:
    """The user is told which file to fix, by its path."""
    config = tmp_path / "vast.toml"
    config.write_text(f"{snippet}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({"VAST_PIPELINE_CONFIG": str(config), "U": "https://hooks.example/x"})
    assert str(config) in str(caught.value)


def test_a_webhook_variable_without_a_url_names_the_variable_not_the_value(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"VAST_PIPELINE_ALERT_WEBHOOK": "hooks.example/T0SECRET/xyz"})
    assert "VAST_PIPELINE_ALERT_WEBHOOK" in str(caught.value)
    assert "T0SECRET" not in str(caught.value)


def test_defaults_and_named_receivers(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[alerts]\ndisabled = ["spend_spike"]\n'
                      '[[alerts.receivers]]\nname = "oncall"\nurl_env = "ONCALL_URL"\n')
    settings = load_settings({"VAST_PIPELINE_CONFIG": str(config),
                              "ONCALL_URL": "https://hooks.example/T0SECRET",
                              "VAST_PIPELINE_ALERT_WEBHOOK": "https://chat.example/x/SECRET2"})
    alerts = alert_settings(settings)
    assert (alerts.instance_down_minutes, alerts.collection_failing_runs, alerts.idle_gpu_hours,
            alerts.stopped_days, alerts.credit_runway_days, alerts.spend_spike_ratio,
            alerts.bill_difference_pct) == (30, 2, 6, 3, 3, 2, 10)
    assert [r.name for r in alerts.receivers] == ["default", "oncall"]
    assert not alerts.enabled("spend_spike") and alerts.enabled("idle_gpu")
    assert "SECRET" not in repr(settings)


def test_a_rule_switched_off_sends_nothing_and_resolves_what_it_had_fired(
        home: Path, tmp_path: Path) -> None:
    on = write_config(tmp_path / "on.toml", FAST + "collection_failing_runs = 1\n")
    off = write_config(tmp_path / "off.toml", FAST + "collection_failing_runs = 1\n"
                       'disabled = ["collection_failing"]\n')
    with SimulatorServer({KEY: FleetModel(seed=SEED, size=3)}) as server, \
            Receiver() as receiver:
        failing_collection(make_settings(home, server.url, receiver, off, key="refused-1"),
                           SEARCH_FROM)
        assert receiver.accepted() == []
        failing_collection(make_settings(home, server.url, receiver, on, key="refused-1"),
                           SEARCH_FROM + STEP)
        failing_collection(make_settings(home, server.url, receiver, off, key="refused-1"),
                           SEARCH_FROM + 2 * STEP)
    states = [(b["state"], b["key"]) for b in receiver.accepted()]
    assert states == [("firing", "collection_failing/default"),
                      ("resolved", "collection_failing/default")]
    assert "switched off" in receiver.accepted()[1]["summary"]


# -- the CLI ------------------------------------------------------------------------------


def test_alerts_test_says_whether_the_receiver_accepted(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAST_PIPELINE_CONFIG", str(write_config(tmp_path / "c.toml")))
    assert main(["alerts", "test"]) == 2  # no receiver: one sentence, config exit code
    assert "VAST_PIPELINE_ALERT_WEBHOOK" in capsys.readouterr().err
    with Receiver(default=500) as refusing:
        monkeypatch.setenv("VAST_PIPELINE_ALERT_WEBHOOK", refusing.url)
        assert main(["alerts", "test"]) == 1
        refused = capsys.readouterr()
    with Receiver() as accepting:
        monkeypatch.setenv("VAST_PIPELINE_ALERT_WEBHOOK", accepting.url)
        assert main(["alerts", "test"]) == 0
        accepted = capsys.readouterr()
    assert "NOT accepted" in refused.err and "HTTP 500" in refused.err
    assert "default: accepted (HTTP 200)" in accepted.out
    assert len(refusing.requests) == 4  # the configured attempts
    body = accepting.accepted()[0]
    assert body["rule"] == "test" and body["text"] == body["summary"]
    for output in (refused.out, refused.err, accepted.out, accepted.err):
        assert SECRET_PATH not in output and "T0SECRET" not in output


def test_a_token_in_the_webhook_query_string_never_reaches_a_log_or_the_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG, logger="urllib3")  # logs `path?query` per request
    token, key = "SECRETVALUE-query-token-42", "AIzaQueryKey0123"
    monkeypatch.setenv("VAST_PIPELINE_CONFIG", str(write_config(tmp_path / "c.toml")))
    with Receiver() as receiver:
        url = f"http://127.0.0.1:{receiver.port}/v1/spaces/AAA/messages?key={key}&token={token}"
        monkeypatch.setenv("VAST_PIPELINE_ALERT_WEBHOOK", url)
        assert main(["--debug", "alerts", "test"]) == 0
    assert receiver.requests[0]["path"].endswith(f"token={token}")  # it was really sent
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # and really logged
    out = capsys.readouterr()
    texts = [r.getMessage() for r in caplog.records] + [caplog.text, out.out, out.err]
    assert not any(token in t or key in t for t in texts)


def test_alerts_lists_firing_and_recent_transitions_with_delivery_status(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "c.toml", FAST + "collection_failing_runs = 1\n")
    with SimulatorServer({KEY: FleetModel(seed=SEED, size=3)}) as server, \
            Receiver(default=503) as receiver:
        failing_collection(make_settings(home, server.url, receiver, config, key="refused-1"),
                           SEARCH_FROM)
        monkeypatch.setenv("VAST_PIPELINE_CONFIG", str(config))
        monkeypatch.setenv("VAST_PIPELINE_ALERT_WEBHOOK", receiver.url)
        assert main(["alerts"]) == 0
    out = capsys.readouterr().out
    assert "firing: 1" in out and "collection_failing/default" in out
    assert "queued for delivery: 1" in out
    assert "default: queued (4 attempts, the receiver answered HTTP 503)" in out
    assert SECRET_PATH not in out and "T0SECRET" not in out


@pytest.mark.parametrize("corrupt", [b'{"firing": {"collection', b"[]", b"\xff\xfe"])
def test_a_corrupt_state_file_is_one_sentence_and_a_fresh_state_once_moved_aside(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, corrupt: bytes) -> None:
    from pipeline.alerts.engine import STATE_FILE
    from pipeline.alerts.hooks import run_finished
    from tests.support.cli import assert_one_sentence_error, run_cli

    store = Store(home)
    state = Path(store.path(STATE_FILE))
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_bytes(corrupt)
    assert_one_sentence_error(run_cli("alerts", home=home), str(state), "move it aside")
    config = write_config(tmp_path / "c.toml")
    with Receiver() as receiver:
        settings = make_settings(home, "http://127.0.0.1:9", receiver, config)
        with caplog.at_level(logging.WARNING, logger="pipeline.alerts"):
            assert run_finished(settings, "nightly", "run-1", failed=True) is None
        warnings = [r.getMessage() for r in caplog.records if r.name == "pipeline.alerts"]
        assert len(warnings) == 1 and warnings[0].startswith(f"The alert state {state} ")
        assert "move it aside" in warnings[0] and warnings[0].endswith("fire again.")
        assert "\n" not in warnings[0]
        assert receiver.requests == [] and state.read_bytes() == corrupt  # left as it was
        state.rename(state.with_suffix(".json.bad"))
        run_finished(settings, "nightly", "run-2", failed=True)
    assert [b["key"] for b in receiver.accepted()] == ["run_failed/nightly"]
    assert read_state(store)["firing"]


# -- the cost rules after a build, the alerts table, the report ----------------------------


def idle_runs(fleet: FleetModel, moments: list[datetime], flag) -> dict[int, float]:
    """Hours of the run of intervals matching `flag` that reaches the newest snapshot, per
    instance listed at the moment before it (an interval starts at each listed snapshot)."""
    grid = [{r["id"]: r for r in fleet.clean_records_at(m)} for m in moments]
    out = {}
    for iid in grid[-2]:
        hours = 0.0
        for k in range(len(moments) - 2, -1, -1):
            record = grid[k].get(iid)
            if record is None or not flag(record):
                break
            hours += (moments[k + 1] - moments[k]).total_seconds() / 3600
        if hours:
            out[iid] = hours
    return out


def run_records(fleet: FleetModel, moments: list[datetime], flag, iid: int) -> list[dict]:
    """The records of the run `idle_runs` counts for instance `iid`, newest first."""
    out = []
    for moment in reversed(moments[:-1]):
        record = {r["id"]: r for r in fleet.clean_records_at(moment)}.get(iid)
        if record is None or not flag(record):
            break
        out.append(record)
    return out


def is_idle_gpu(r: dict) -> bool:
    return r["actual_status"] in ("running", "frozen") and r["gpu_util"] is not None \
        and r["gpu_util"] < 0.05


def is_stopped(r: dict) -> bool:
    return r["intended_status"] == "stopped" and r["actual_status"] not in ("running", "frozen")


def test_cost_rules_after_a_build_and_the_alerts_table(home: Path, tmp_path: Path) -> None:
    from pipeline.alerts.hooks import after_build
    from pipeline.reports import write_reports
    from pipeline.warehouse.build import build_for
    from pipeline.warehouse.query import query

    fleet = FleetModel(seed=SEED, size=SIZE)
    moments = [SEARCH_FROM + timedelta(hours=45) + i * STEP for i in range(13)]  # 3 hours
    thresholds = "idle_gpu_hours = 1\nstopped_days = 0.05\ncredit_runway_days = 100000\n"
    config = write_config(tmp_path / "c.toml", FAST + thresholds)
    clock = Clock(moments[0])
    with SimulatorServer({KEY: fleet}, clock=clock) as server, Receiver() as receiver:
        settings = make_settings(home, server.url, receiver, config)
        collect_at(settings, clock, moments)
        build_for(settings)
        after_build(settings)
        first = list(receiver.accepted())
        quiet = write_config(tmp_path / "q.toml", FAST + thresholds.replace("100000", "0.001"))
        after_build(make_settings(home, server.url, receiver, quiet))
        second = receiver.accepted()[len(first):]
    by_rule = {rule: {b["instance_id"] for b in first if b["rule"] == rule}
               for rule in ("idle_gpu", "stopped_storage")}
    expected_idle = {i for i, h in idle_runs(fleet, moments, is_idle_gpu).items() if h >= 1}
    before_newest = {r["id"]: r for r in fleet.clean_records_at(moments[-2])}
    expected_stopped = {i for i, h in idle_runs(fleet, moments, is_stopped).items()
                        if h >= 0.05 * 24 and before_newest[i]["actual_status"] != "offline"}
    assert expected_idle and expected_stopped, "the window must hold both for this test"
    assert by_rule["idle_gpu"] == expected_idle
    assert by_rule["stopped_storage"] == expected_stopped
    idle_body = next(b for b in first if b["rule"] == "idle_gpu")
    most = max(r["gpu_util"] for r in run_records(fleet, moments, is_idle_gpu,
                                                  idle_body["instance_id"]))
    assert f"while idle (at most {100 * most:.3g} % utilisation)" in idle_body["summary"]
    assert "$" in idle_body["summary"]
    runway = [b for b in first if b["rule"] == "credit_runway"]
    assert [b["key"] for b in runway] == ["credit_runway/default"]
    assert f"${fleet.credit_balance:,.2f}" in runway[0]["summary"]
    assert not [b for b in first if b["rule"] in ("spend_spike", "bill_difference")]
    assert [(b["state"], b["key"]) for b in second] == [("resolved", "credit_runway/default")]

    build_for(settings)  # the alerts table holds every transition and its delivery
    table = query(home, "select key, state, delivery_status, delivery_attempts, receivers "
                        "from alerts order by seq")
    logged = [r for r in read_log(Store(home), SEARCH_FROM.date()) if r["record"] ==
              "transition"]
    assert [(k, s) for k, s, *_ in table.rows] == [(t["key"], t["state"]) for t in logged]
    assert len(table.rows) == len(receiver.accepted())
    assert {row[2] for row in table.rows} == {"delivered"}
    assert all(row[3] == 1 and list(row[4]) == ["default"] for row in table.rows)
    report = write_reports(home, "reliability", date_from=moments[0].date(),
                           date_to=moments[-1].date(), formats=["md"], out_dir=tmp_path / "r")
    text = report[0].read_text()
    assert "Alerts in the window" in text and "credit_runway/default" in text


def test_bill_difference_fires_for_final_days_and_is_inactive_without_billed_charges(
        tmp_path: Path) -> None:
    import duckdb

    from pipeline.alerts.build_rules import evaluate_build_rules
    from pipeline.alerts.settings import BUILD_RULES, parse_alerts

    only_bills = parse_alerts({"disabled": [r for r in BUILD_RULES if r != "bill_difference"]},
                              {})
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("create table snapshots as select 'default' as account, "
                "timestamptz '2026-03-05 12:00:00+00' as snapshot_at")
    without = evaluate_build_rules(con, only_bills)
    assert "bill_difference" not in without.rules  # no billed charges: not even evaluated
    con.execute("""create table cost_reconciliation as select * from (values
        ('default', date '2026-03-01', 1, 10.0, 11.5, true),   -- the day: 14.3 % more
        ('default', date '2026-03-01', 2, 5.0, 6.0, true),
        ('default', date '2026-03-02', 1, 10.0, 10.5, true),   -- 4.8 %: quiet
        ('default', date '2026-03-03', 1, 10.0, 20.0, false)   -- not final: quiet
        ) t(account, day, instance_id, estimated_cost, billed_cost, is_final)""")
    with_bills = evaluate_build_rules(con, only_bills)
    assert "bill_difference" in with_bills.rules
    assert [c.key for c in with_bills.conditions] == ["bill_difference/default/2026-03-01"]
    assert "$17.50, 14.3 % more than the estimated $15.00" in with_bills.conditions[0].summary
    stricter = parse_alerts({"bill_difference_pct": 4, "disabled": list(only_bills.disabled)},
                            {})
    assert [c.key for c in evaluate_build_rules(con, stricter).conditions] == [
        "bill_difference/default/2026-03-01", "bill_difference/default/2026-03-02"]
    con.close()


# -- the Dagster run sensors --------------------------------------------------------------


def run_and_sense(job, sensor, status: str, instance) -> None:
    """Execute `job` in process, then call `sensor` on its run's FAILURE/SUCCESS event as
    the Dagster daemon would."""
    import dagster as dg

    result = job.execute_in_process(instance=instance, raise_on_error=False)
    event = next(e for e in result.all_events if e.event_type_value == f"PIPELINE_{status}"
                 or e.event_type_value == f"RUN_{status}")
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=event, dagster_instance=instance,
        dagster_run=result.dagster_run)
    sensor(context.for_run_failure() if status == "FAILURE" else context)


def test_a_failed_dagster_run_is_posted_and_resolved_by_the_next_success(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from assets.alerts import alert_on_run_failure, resolve_on_run_success

    attempts = {"n": 0}

    @dg.op
    def flaky() -> None:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise dg.Failure(description="the API refused the key")

    @dg.job
    def nightly() -> None:
        flaky()

    monkeypatch.setenv("VAST_PIPELINE_CONFIG", str(write_config(tmp_path / "c.toml")))
    with Receiver() as receiver, dg.DagsterInstance.ephemeral() as instance:
        monkeypatch.setenv("VAST_PIPELINE_ALERT_WEBHOOK", receiver.url)
        run_and_sense(nightly, alert_on_run_failure, "FAILURE", instance)
        run_and_sense(nightly, resolve_on_run_success, "SUCCESS", instance)
    bodies = receiver.accepted()
    assert [(b["state"], b["key"]) for b in bodies] == [("firing", "run_failed/nightly"),
                                                       ("resolved", "run_failed/nightly")]
    assert "the API refused the key" in bodies[0]["summary"]
    assert bodies[1]["summary"].startswith("Resolved after")


def test_a_failed_run_text_reaches_no_receiver_or_log_with_a_key_or_aws_secret(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from assets.alerts import alert_on_run_failure

    aws_secret, aws_token = "aws-secret-0123456789abcdef", "aws-session-token-FwoGZXIvYXdzE"
    monkeypatch.setenv("VAST_API_KEY", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", aws_token)
    monkeypatch.setenv("VAST_PIPELINE_CONFIG", str(write_config(tmp_path / "c.toml")))
    with Receiver() as receiver, dg.DagsterInstance.ephemeral() as instance:
        monkeypatch.setenv("VAST_PIPELINE_ALERT_WEBHOOK", receiver.url)

        @dg.op
        def leaky() -> None:
            raise dg.Failure(description=f"GET /api/v0/instances?api_key={KEY} refused; "
                                         f"S3 said {aws_secret} / {aws_token} is invalid; "
                                         f"posting to {receiver.url} failed")

        @dg.job
        def nightly() -> None:
            leaky()

        run_and_sense(nightly, alert_on_run_failure, "FAILURE", instance)
    [body] = receiver.accepted()
    assert "api_key=[redacted] refused" in body["summary"]
    assert "S3 said [redacted] / [redacted] is invalid" in body["summary"]
    everything = json.dumps(body).encode() + all_bytes_under(home)
    for secret in (KEY, aws_secret, aws_token, SECRET_PATH):
        assert secret.encode() not in everything


@pytest.mark.parametrize("message", ["", "  \n "])
def test_a_step_error_without_a_message_still_names_the_step_and_the_error(
        message: str) -> None:
    from dagster._core.execution.plan.objects import StepFailureData
    from dagster._utils.error import SerializableErrorInfo

    from assets.alerts import step_reason

    data = StepFailureData(SerializableErrorInfo(message, [], "RuntimeError"), None)
    assert step_reason("collect", data) == (
        "collect: the step raised RuntimeError without a message")
    data = StepFailureData(SerializableErrorInfo("RuntimeError: disk full\n", [], "X"), None)
    assert step_reason("collect", data) == "collect: RuntimeError: disk full"


def test_spend_spike_compares_the_burn_now_with_the_7_day_average(tmp_path: Path) -> None:
    import duckdb

    from pipeline.alerts.build_rules import evaluate_build_rules
    from pipeline.alerts.settings import BUILD_RULES, parse_alerts

    only_spike = parse_alerts({"disabled": [r for r in BUILD_RULES if r != "spend_spike"]}, {})
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    # Two days of hourly snapshots costing $1/h, then a burn of $2.50/h now.
    con.execute("""create table snapshots as
        select 'default' as account, ts as snapshot_at
        from generate_series(timestamptz '2026-03-03 00:00:00+00',
                             timestamptz '2026-03-05 00:00:00+00', interval 1 hour) t(ts)""")
    con.execute("""create table instance_intervals as
        select 'default' as account, cast(snapshot_at as date) as day, 1 as instance_id,
            snapshot_at as interval_start, 1.0 as total_cost
        from snapshots where snapshot_at < timestamptz '2026-03-05 00:00:00+00'""")
    con.execute("create table account_now as select 'default' as account, 2.5 as "
                "burn_rate_per_hour")
    fired = evaluate_build_rules(con, only_spike).conditions
    assert [c.key for c in fired] == ["spend_spike/default"]
    assert "$2.50/h now, 2.5 times its 7-day average of $1.00/h" in fired[0].summary
    calmer = parse_alerts({"spend_spike_ratio": 3, "disabled": list(only_spike.disabled)}, {})
    assert evaluate_build_rules(con, calmer).conditions == ()
    con.execute("delete from snapshots where snapshot_at < timestamptz '2026-03-04 12:00:00+00'")
    assert evaluate_build_rules(con, only_spike).conditions == ()  # under a day of history
    con.close()


# -- the same hooks through Dagster (what `vast-pipeline collect` and the schedule run) ----


def test_dagster_collections_count_failures_and_ping_the_heartbeat(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from assets.collection import landed_instance_snapshots, raw_snapshots
    from assets.resources import default_resource

    config = write_config(tmp_path / "c.toml", FAST + "collection_failing_runs = 1\n")
    today = datetime.now(UTC).date().isoformat()
    with SimulatorServer({KEY: FleetModel(seed=SEED, size=3)}) as server, \
            Receiver() as receiver:
        for variable, value in (("VAST_PIPELINE_CONFIG", str(config)), ("VAST_URL", server.url),
                                ("VAST_PIPELINE_ALERT_WEBHOOK", receiver.url),
                                ("VAST_PIPELINE_HEARTBEAT_URL", receiver.heartbeat_url)):
            monkeypatch.setenv(variable, value)
        for key, ok in (("refused-key-1", False), (KEY, True)):
            monkeypatch.setenv("VAST_API_KEY", key)
            run = dg.materialize([raw_snapshots, landed_instance_snapshots], partition_key=today,
                                 resources={"vast": default_resource()}, raise_on_error=False)
            assert run.success is ok
    assert [(b["state"], b["key"]) for b in receiver.accepted()] == [
        ("firing", "collection_failing/default"), ("resolved", "collection_failing/default")]
    assert receiver.gets() == ["/heartbeat/secret-ping-token"]
    assert b"T0SECRET" not in all_bytes_under(home)


# -- the record of every evaluation, and what fires now, in the warehouse -----------------


def burn_now(fleet: FleetModel, moment: datetime) -> float:
    """$/h of the instances listed at `moment` under the billing rules: the GPU while running
    or frozen, storage (storage_total_cost, which the fleet model always sets) unless
    offline."""
    burn = 0.0
    for r in fleet.clean_records_at(moment):
        if r["actual_status"] in ("running", "frozen"):
            burn += r["dph_base"]
        if r["actual_status"] != "offline":
            burn += r["storage_total_cost"]
    return burn


def land_like_the_demo(settings, clock: Clock, server_url: str,
                       moments: list[datetime]) -> None:
    """Fetch each moment into the raw zone and land the days, as the demo's backfill does:
    no collection hook runs, so nothing is evaluated until the test asks."""
    from pipeline.landing.history import land_pending
    from pipeline.source.client import VastClient
    from pipeline.source.collect import fetch_snapshot

    store, account = Store(settings.home), settings.accounts[0]
    with VastClient(KEY, server_url, min_interval=0) as client:
        for moment in moments:
            clock.now = moment
            fetch_snapshot(store, account, client, snapshot_at=moment, source="vast")
    for day in sorted({m.date() for m in moments}):
        land_pending(store, account.name, day)


def test_the_demos_evaluation_is_in_the_warehouse_and_matches_the_fleet(
        home: Path, tmp_path: Path) -> None:
    """The demo's call (`after_landing_and_build`, deliver=False) over a home with an outage
    in progress: the warehouse built BEFORE it shows the evaluations and what fires, and
    every figure equals the fleet model's own, worked out here in plain Python."""
    from pipeline.alerts.hooks import after_landing_and_build
    from pipeline.warehouse.build import build_for
    from pipeline.warehouse.query import query

    fleet = FleetModel(seed=SEED, size=SIZE)
    instance, first_down, _ = find_outage(fleet)
    moments = [first_down - 8 * STEP + i * STEP for i in range(11)]  # down 30 min at the end
    thresholds = "idle_gpu_hours = 0.5\nstopped_days = 0.05\ncredit_runway_days = 100000\n"
    clock = Clock(moments[0])
    with SimulatorServer({KEY: fleet}, clock=clock) as server, Receiver() as receiver:
        settings = make_settings(home, server.url, receiver,
                                 write_config(tmp_path / "c.toml", FAST + thresholds))
        land_like_the_demo(settings, clock, server.url, moments)
        build_for(settings)
        assert query(home, "select count(*) from alert_evaluations").rows == [(0,)]
        after_landing_and_build(settings, ["default"], deliver=False)
    assert receiver.requests == []  # the demo's alerts are about a simulated fleet

    # the oracle: what fires after one evaluation at the last moment
    firing_now: dict[str, str] = {}
    for _at, state, key in expected_transitions(fleet, moments):
        firing_now[key] = state
    down = {key for key, state in firing_now.items() if state == "firing"}
    assert f"instance_down/default/{instance}" in down
    idle = {f"idle_gpu/default/{i}" for i, h in idle_runs(fleet, moments, is_idle_gpu).items()
            if h >= 0.5}
    before_newest = {r["id"]: r for r in fleet.clean_records_at(moments[-2])}
    stopped = {f"stopped_storage/default/{i}" for i, h in
               idle_runs(fleet, moments, is_stopped).items()
               if h >= 0.05 * 24 and before_newest[i]["actual_status"] != "offline"}
    assert idle, "the window must hold an idle GPU for this test"
    cost_rules = idle | stopped | {"credit_runway/default"}
    burn = burn_now(fleet, moments[-1])
    runway_days = fleet.credit_balance / burn / 24

    columns, rows = (lambda r: (r.columns, r.rows))(query(
        home, "select * from alert_evaluations order by evaluated_at"))
    evaluations = [dict(zip(columns, row, strict=True)) for row in rows]
    assert [e["point"] for e in evaluations] == ["after_landing", "after_build"]
    landing, build = evaluations
    assert all(e["observed_at"] == moments[-1] for e in evaluations)  # data as of
    assert (landing["rules"], landing["covers_all_accounts"], landing["accounts"]) == (
        ["instance_down"], False, ["default"])
    assert build["covers_all_accounts"] and "credit_runway" in build["rules"]
    assert (landing["firing_in_scope"], landing["fired"], landing["resolved"]) == (
        len(down), len(down), 0)
    assert (build["firing_in_scope"], build["fired"]) == (len(cost_rules), len(cost_rules))
    assert build["firing_total"] == len(down) + len(cost_rules)
    assert landing["run_id"] != build["run_id"]  # two passes, as in a scheduled run

    firing = query(home, "select key, delivery_status, last_evaluated_at, data_as_of, summary "
                         "from alerts_firing order by key").rows
    assert {row[0] for row in firing} == down | cost_rules
    assert {row[1] for row in firing} == {"no receiver"}
    when = {"instance_down": landing["evaluated_at"]}
    assert all(row[2] == when.get(row[0].split("/")[0], build["evaluated_at"])
               and row[3] == moments[-1] for row in firing)
    # `vast-pipeline alerts` (the state) and the warehouse say the same
    assert set(read_state(Store(home))["firing"]) == {row[0] for row in firing}

    account = query(home, "select credit_balance, burn_rate_per_hour, runway_days "
                          "from account_now").rows
    assert account[0][0] == fleet.credit_balance
    assert account[0][1] == pytest.approx(burn, rel=1e-9)
    assert account[0][2] == pytest.approx(runway_days, rel=1e-9)
    runway = next(row[4] for row in firing if row[0] == "credit_runway/default")
    assert f"${fleet.credit_balance:,.2f} of credit left, {runway_days:.1f} days" in runway
    assert f"${burn:,.2f}/h (${burn * 24:,.2f} a day)" in runway


def _tiny_warehouse(home: Path) -> None:
    """A built warehouse over two snapshots of one instance (the alert views need one)."""
    from tests.support.sql_fixtures import RUN, every, instance_rows, write_history

    write_history(home, instance_rows("default", 1, every("2026-03-02 10:00", 2), [RUN] * 2,
                                      dph_base=1.0, storage_total_cost=0.1))
    build_at_cadence(home)


def _firing_keys(home: Path) -> set[str]:
    from pipeline.warehouse.query import query

    return {row[0] for row in query(home, "select key from alerts_firing").rows}


def test_what_fires_comes_from_the_current_alert_state_only(home: Path, tmp_path: Path) -> None:
    """A state file moved aside (the documented way out of a corrupt one) takes its firing
    alerts with it: the warehouse then shows the new state's, like `vast-pipeline alerts`."""
    from pipeline.alerts.hooks import run_finished
    from pipeline.warehouse.query import query

    _tiny_warehouse(home)
    settings = make_settings(home, "http://127.0.0.1:9", None, write_config(tmp_path / "c.toml"))
    assert _firing_keys(home) == set()
    run_finished(settings, "nightly", "run-1", failed=True)
    run_finished(settings, "hourly", "run-2", failed=True)
    run_finished(settings, "hourly", "run-3", failed=False)
    assert _firing_keys(home) == {"run_failed/nightly"}  # live: no build since
    scoped = query(home, "select keys, firing_in_scope, firing_total, fired, resolved "
                         "from alert_evaluations order by evaluated_at").rows
    assert [(list(k), *rest) for k, *rest in scoped] == [
        (["run_failed/nightly"], 1, 1, 1, 0), (["run_failed/hourly"], 1, 2, 1, 0),
        (["run_failed/hourly"], 0, 1, 0, 1)]
    state = home / "alerts" / "state.json"
    state.rename(state.with_suffix(".json.moved"))
    run_finished(settings, "weekly", "run-4", failed=True)
    assert _firing_keys(home) == {"run_failed/weekly"} == set(read_state(Store(home))["firing"])
    states = query(home, "select count(distinct alert_state_id) from alerts").rows
    assert states == [(2,)]
    # the read-only connection reads the log, not the state beside it
    with pytest.raises(PipelineError, match="reads only the warehouse"):
        query(home, f"select content from read_text('{home / 'alerts' / 'state.json'}')")


def test_merging_a_days_log_files_keeps_every_record_once(home: Path, tmp_path: Path) -> None:
    """The daily merge of the log: readers (the warehouse views and `read_log`) see the same
    records before, after, and when an interrupted merge left the old files behind."""
    import shutil

    from pipeline.alerts.engine import LOG_DIR, compact_day
    from pipeline.alerts.hooks import run_finished
    from pipeline.warehouse.query import query

    _tiny_warehouse(home)
    settings = make_settings(home, "http://127.0.0.1:9", None, write_config(tmp_path / "c.toml"))
    store = Store(home)
    for i, failed in enumerate((True, True, False, False)):  # two fire, both resolve
        run_finished(settings, f"job{i % 2}", f"run-{i}", failed=failed)
    today = datetime.now(UTC).date()
    folder = home / LOG_DIR / f"day={today.isoformat()}"

    def seen() -> tuple[list, list, list]:
        records = sorted(json.dumps(r, sort_keys=True) for r in read_log(store, today))
        views = [query(home, f"select * from {name} order by all").rows
                 for name in ("alerts", "alert_evaluations")]
        return records, *views

    before = seen()
    assert len(before[2]) == 4 and len(before[1]) == 4 and len(list(folder.iterdir())) == 4
    originals = tmp_path / "originals"
    shutil.copytree(folder, originals)
    compact_day(store, today)
    assert len(list(folder.iterdir())) == 1
    assert seen() == before
    for path in originals.iterdir():  # a merge interrupted before it deleted them
        shutil.copy(path, folder / path.name)
    assert seen() == before
    run_finished(settings, "job0", "run-5", failed=True)
    after = seen()
    assert len(after[2]) == 5 and set(before[0]) < set(after[0])
    compact_day(store, today)  # merges the merged file and the new one, drops the leftovers
    assert len(list(folder.iterdir())) == 1
    assert seen() == after


def test_the_log_is_merged_once_a_day_by_the_first_run(home: Path, tmp_path: Path) -> None:
    from pipeline.alerts.engine import LOG_DIR, alert_book
    from pipeline.alerts.hooks import run_finished

    settings = make_settings(home, "http://127.0.0.1:9", None, write_config(tmp_path / "c.toml"))
    for i in range(3):
        run_finished(settings, "job", f"run-{i}", failed=bool(i % 2))
    today = datetime.now(UTC).date()
    folder = home / LOG_DIR / f"day={today.isoformat()}"
    assert len(list(folder.iterdir())) == 3  # today's files stay apart
    with alert_book(Store(home), alert_settings(settings)) as book:
        book.compact_log(today=today + timedelta(days=1))  # as the first run of tomorrow
    assert len(list(folder.iterdir())) == 1
    assert read_state(Store(home))["log_compacted_through"] == today.isoformat()
    assert [(r["state"], r["key"]) for r in read_log(Store(home), today)
            if r["record"] == "transition"] == [("firing", "run_failed/job"),
                                                ("resolved", "run_failed/job")]


def test_after_the_demo_the_warehouse_and_its_report_show_what_fires(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`make demo` evaluates the rules after its build, as a scheduled run does, and posts
    nothing even with a receiver set: the report it writes lists what fires."""
    import pyarrow.parquet as pq

    from pipeline.warehouse.query import query

    home = tmp_path / "demo"
    with Receiver() as receiver:
        monkeypatch.setenv("VAST_PIPELINE_ALERT_WEBHOOK", receiver.url)
        assert main(["demo", "--days", "1", "--size", "12", "--home", str(home)]) == 0
    assert receiver.requests == []
    capsys.readouterr()
    newest = max(pq.read_table(home / "parquet" / "snapshots").column("snapshot_at").to_pylist())
    evaluations = query(home, "select point, observed_at, firing_total from alert_evaluations "
                              "order by evaluated_at").rows
    assert [(p, at) for p, at, _ in evaluations] == [("after_landing", newest),
                                                     ("after_build", newest)]
    firing = {key: status for key, status in
              query(home, "select key, delivery_status from alerts_firing").rows}
    assert firing, "the simulated fleet has problems for the demo to show"
    assert set(firing) == set(read_state(Store(home))["firing"])
    assert evaluations[-1][2] == len(firing) and set(firing.values()) == {"no receiver"}
    monkeypatch.setenv("VAST_PIPELINE_HOME", str(home))
    assert main(["alerts"]) == 0
    assert f"firing: {len(firing)}\n" in capsys.readouterr().out
    report = next((home / "reports" / "demo").glob("reliability_*.md")).read_text()
    assert all(key in report for key in firing)
