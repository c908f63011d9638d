"""The production topology, live: the services of deploy/docker-compose.yml (their own
commands, on 127.0.0.1) on the shipped deploy/dagster.yaml and deploy/workspace.yaml.

A code server (`dagster code-server start`, the `code` service) serves the definitions over
gRPC and runs the runs (default run launcher); `dagster-daemon run` and `dagster-webserver`
reach it through deploy/workspace.yaml, with only the DAGSTER_PG_* settings, as in compose.
One combined test, because the daemon's cron ticks at most once a minute: it switches
`collect_schedule` on at a 1-minute cadence, lets the daemon tick it through the
QueuedRunCoordinator (at most `max_concurrent_runs` at once), lets the automation sensor
build the warehouse and the reports after each collection, then checks that the data home,
the run history in Postgres and the webserver tell the same story.
tests/deploy/conftest.py schedules it first in the session, so its minutes overlap the
rest of the suite instead of adding to it.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import requests
import yaml
from dagster._core.scheduler.instigation import InstigatorStatus, TickStatus

from tests.support.cli import clean_env
from tests.support.ports import free_port
from tests.support.postgres import DEPLOY, deploy_instance

REPO = Path(__file__).resolve().parents[2]
TICKS = 2  # each one a minute: 3 took 6 min on a loaded machine, 2 keep it near 4
COLLECT_JOB, SCHEDULE = "collect_job", "collect_schedule"
REPORTS = ("cost_report", "cost_report_month_to_date", "reliability_report")
DAGSTER = Path(sys.executable).parent


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _set(command: list[str], flag: str, value: str) -> list[str]:
    """`command` with the value after `flag` replaced."""
    at = command.index(flag) + 1
    return [*command[:at], value, *command[at + 1:]]


@dataclass
class Topology:
    """The compose services' commands, pointed at 127.0.0.1 and free ports."""

    tmp: Path
    code_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        workspace = _yaml(DEPLOY / "workspace.yaml")
        for entry in workspace["load_from"]:
            entry["grpc_server"].update(host="127.0.0.1", port=self.code_port)
        self.workspace = self.tmp / "workspace.yaml"
        self.workspace.write_text(yaml.safe_dump(workspace), encoding="utf-8")
        self.services = _yaml(DEPLOY / "docker-compose.yml")["services"]

    def command(self, service: str) -> list[str]:
        command = self.services[service]["command"]
        if "-w" in command:
            command = _set(command, "-w", str(self.workspace))
        if service == "code":
            command = _set(command, "-p", str(self.code_port))
        if service == "webserver":
            command = _set(command, "-p", str(self.web_port))
        if "-h" in command:
            command = _set(command, "-h", "127.0.0.1")
        return [str(DAGSTER / command[0]), *command[1:]]

    def start(self, service: str, env: dict[str, str]) -> subprocess.Popen:
        with (self.tmp / f"{service}.log").open("w") as log:
            process = subprocess.Popen(self.command(service), cwd=REPO, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def log(self, service: str) -> str:
        return (self.tmp / f"{service}.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """End each service and what it started (the code server's run workers): its
        process group, which `start_new_session` gave it."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _listening(port: int, process: subprocess.Popen, deadline: float) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, port
            time.sleep(0.5)


def _webserver_runs(port: int, deadline: float) -> set[tuple[str, str]]:
    """(run id, status) of every run, as the webserver's GraphQL API lists them."""
    query = "{ runsOrError { ... on Runs { results { runId status } } } }"
    while True:
        try:
            answer = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query},
                                   timeout=30)
            answer.raise_for_status()
            break
        except requests.RequestException:
            assert time.monotonic() < deadline
            time.sleep(1)
    results = answer.json()["data"]["runsOrError"]["results"]
    return {(r["runId"], r["status"]) for r in results}


def _collect_runs(instance: dg.DagsterInstance) -> list[dg.RunRecord]:
    records = instance.get_run_records(dg.RunsFilter(job_name=COLLECT_JOB))
    return sorted(records, key=lambda r: r.create_timestamp)


def _build_after(instance: dg.DagsterInstance, moment: float) -> dg.RunRecord | None:
    """A successful run that materialized the reports and started after `moment`."""
    for record in instance.get_run_records(dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.SUCCESS])):
        run = record.dagster_run
        if run.job_name != COLLECT_JOB and record.start_time and record.start_time > moment:
            keys = {k.to_user_string() for k in run.asset_selection or ()}
            if set(REPORTS) <= keys:
                return record
    return None


def _in_flight(instance: dg.DagsterInstance) -> int:
    return len(instance.get_run_records(dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.NOT_STARTED])))


def _wait(done: Callable[[], bool], services: Topology, deadline: float, what: str) -> None:
    while not done():
        if any(p.poll() is not None for p in services.processes) or (
                time.monotonic() > deadline):
            pytest.fail(f"{what}: not in time; daemon log:\n{services.log('daemon')}\n"
                        f"code server log:\n{services.log('code')}")
        time.sleep(2)


def _collected(instance: dg.DagsterInstance) -> bool:
    done = [r for r in _collect_runs(instance)
            if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
    return len(done) >= TICKS


def _switch_off(instance: dg.DagsterInstance) -> None:
    """Stop the schedule, as the UI's switch does (no daemon restart)."""
    for state in instance.all_instigator_state():
        if state.name == SCHEDULE:
            instance.update_instigator_state(state.with_status(InstigatorStatus.STOPPED))


def _built_and_idle(instance: dg.DagsterInstance) -> bool:
    """The reports were built after the last collection, and no run is under way."""
    last = _collect_runs(instance)[-1]
    return (last.end_time is not None and _build_after(instance, last.end_time) is not None
            and not _in_flight(instance))


def _most_at_once(records: list[dg.RunRecord]) -> int:
    """The largest number of runs that were executing at the same moment."""
    edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_daemon_ticks_the_schedule_and_the_sensor_builds_after_each_collection(
        home: Path, deploy_env: dict[str, str], tmp_path: Path) -> None:
    env = clean_env(home, {**deploy_env, "VAST_PIPELINE_CADENCE_MINUTES": "1"})
    # As in compose: only the code location gets the pipeline's settings.
    dagster_only = {k: v for k, v in env.items() if not k.startswith("VAST_")}
    services = Topology(tmp_path)
    try:
        code = services.start("code", env)
        _listening(services.code_port, code, time.monotonic() + 180)
        services.start("daemon", dagster_only)
        services.start("webserver", dagster_only)
        switched = subprocess.run([str(DAGSTER / "dagster"), "schedule", "start", SCHEDULE,
                                   "-w", str(services.workspace)], cwd=REPO, env=dagster_only,
                                  capture_output=True, text=True, timeout=180)
        assert switched.returncode == 0, switched.stdout + switched.stderr
        started = time.time()
        with deploy_instance(deploy_env) as instance:
            deadline = time.monotonic() + 360
            _wait(lambda: _collected(instance), services, deadline, f"{TICKS} collections")
            _switch_off(instance)
            _wait(lambda: _built_and_idle(instance), services, deadline,
                  "the build after the last collection")
            [state] = [s for s in instance.all_instigator_state() if s.name == SCHEDULE]
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
            collects = _collect_runs(instance)
            records = instance.get_run_records()
            enqueued = {r.dagster_run.run_id: instance.all_logs(
                r.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)
                for r in records}
            landed = {r.run_id: r.asset_materialization.metadata["rows"].value
                      for r in instance.fetch_materializations(
                          dg.AssetKey("landed_instance_snapshots"), limit=100).records}
            last_build = _build_after(instance, collects[-1].end_time)
            report_runs = {key: instance.get_latest_materialization_event(
                dg.AssetKey(key)).run_id for key in REPORTS}
        shown = _webserver_runs(services.web_port, time.monotonic() + 120)
    finally:
        services.stop()

    # The schedule ticked at its cadence, a run per tick, all through the queue.
    ticked = sorted((t for t in ticks if t.status == TickStatus.SUCCESS),
                    key=lambda t: t.timestamp)
    assert len(ticked) >= TICKS
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(ticked)]
    assert all(55 <= gap <= 65 for gap in gaps), gaps
    assert all(t.timestamp % 60 < 30 for t in ticked)  # on the minute, as cron says
    assert sorted(r for t in ticked for r in t.run_ids) == sorted(
        r.dagster_run.run_id for r in collects)
    assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
    assert shown == {(r.dagster_run.run_id, "SUCCESS") for r in records}  # the UI's list
    assert all(len(events) == 1 for events in enqueued.values()), enqueued
    limit = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())[
        "run_coordinator"]["config"]["max_concurrent_runs"]
    assert _most_at_once(records) <= limit
    # The data home agrees with the history: one snapshot per collection run, its rows
    # landed once, and the reports built from the warehouse after the last collection.
    assert len(list((home / "raw").rglob("*.ndjson.zst"))) == len(collects)
    parquet = f"{home}/parquet/instance_snapshots/*/*/*.parquet"
    per_snapshot = duckdb.execute(f"select snapshot_at, count(*) from read_parquet('{parquet}')"
                                  " group by 1 order by 1").fetchall()
    assert len(per_snapshot) == len(collects)
    assert sorted(landed) == sorted(r.dagster_run.run_id for r in collects)
    assert sum(landed.values()) == sum(rows for _, rows in per_snapshot)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as warehouse:
        newest = warehouse.execute("select max(snapshot_at) from instance_snapshots").fetchone()
    assert newest[0] == per_snapshot[-1][0]
    assert last_build is not None
    assert set(report_runs.values()) == {last_build.dagster_run.run_id}
    assert list((home / "reports" / "cost_last_7_days").glob("*.html"))
    timings = ", ".join(f"{gap:.1f}" for gap in gaps)
    runs = ", ".join(f"{r.end_time - r.start_time:.1f}" for r in collects)
    print(f"\nticks {len(ticked)} (first {ticked[0].timestamp - started:.0f} s after start); "
          f"gaps between ticks {timings} s; collection runs {runs} s; the last build "
          f"{last_build.end_time - last_build.start_time:.1f} s, "
          f"{last_build.end_time - collects[-1].end_time:.1f} s after the last collection")
