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
from pipeline.collect import collect
from pipeline.config import load_settings
from pipeline.errors import ConfigError, PipelineError
from pipeline.fleet import FleetModel
from pipeline.simulator import SimulatorServer
from tests.alert_receiver import SECRET_PATH, Receiver

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
        collect(settings, now=moment)


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
    assert read_state(__import__("pipeline.storage").storage.Store(home))["outbox"] == []


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
            from pipeline.collect import collect
            from pipeline.config import load_settings
            from pipeline.fleet import FleetModel
            from pipeline.simulator import SimulatorServer
            moment = datetime.fromisoformat({later.isoformat()!r})
            with SimulatorServer({{{KEY!r}: FleetModel(seed={SEED}, size={SIZE})}},
                                 clock=lambda: moment) as server:
                import os
                env = dict(os.environ, VAST_URL=server.url)
                collect(load_settings(env), now=moment)
        """)
        env = {"VAST_PIPELINE_HOME": str(home), "VAST_API_KEY": KEY,
               "VAST_PIPELINE_CONFIG": str(config), "VAST_PIPELINE_ALERT_WEBHOOK": receiver.url,
               "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
        assert done.returncode == 0, done.stderr
        assert [b["key"] for b in receiver.accepted()] == fired
    assert f"instance_down/default/{instance}" in read_state(
        __import__("pipeline.storage").storage.Store(home))["firing"]
    assert receiver.url not in done.stdout + done.stderr
