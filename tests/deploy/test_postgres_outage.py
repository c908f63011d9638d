"""Postgres going away in the middle of a `vast-pipeline collect`, and coming back."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipeline.landing.raw import iter_snapshots
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import FaultConfig, SimulatorServer
from pipeline.storage.store import Store
from tests.support.cli import assert_one_sentence_error, clean_env, run_cli
from tests.support.postgres import (
    PostgresServer,
    deploy_dagster_home,
    deploy_instance,
    start_postgres,
)

KEY = "outage-test-key-0123456789"
# The command ends within this of Postgres going away: dagster-postgres retries each of the
# run's remaining writes about 6 s (measured: about 48 s in all, on a loaded machine).
BOUND_SECONDS = 120


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, so stopping it cannot disturb the other tests."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.close()


def _landed(home: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Records per snapshot in the raw zone, and rows per snapshot in the Parquet history."""
    raw = {s.snapshot_id: sum(1 for _ in s.records) for s in iter_snapshots(Store(str(home)))}
    files = list((home / "parquet" / "instance_snapshots").rglob("*.parquet"))
    if not files:
        return raw, {}
    glob = f"{home}/parquet/instance_snapshots/*/*/*.parquet"
    rows = dict(duckdb.execute(f"select snapshot_id, count(*) from read_parquet('{glob}') "
                               "group by 1").fetchall())
    return raw, rows


@pytest.mark.slow
def test_postgres_stopped_during_a_collect_ends_it_and_the_next_collect_heals(
        home: Path, tmp_path: Path, own_postgres: PostgresServer) -> None:
    config = tmp_path / "vast-pipeline.toml"
    config.write_text("min_interval_seconds = 0.01\n", encoding="utf-8")
    deploy_env = {"DAGSTER_HOME": str(deploy_dagster_home(tmp_path / "dagster_home")),
                  **own_postgres.create_database("outage")}
    # Every response takes 2 s: Postgres is stopped while the run is fetching.
    slow = FaultConfig(rate_slow=1.0, slow_seconds=2.0)
    with SimulatorServer({KEY: FleetModel(seed=2, size=5)}, faults=slow) as server:
        env = clean_env(home, {**deploy_env, "VAST_API_KEY": KEY, "VAST_URL": server.url,
                               "VAST_PIPELINE_CONFIG": str(config)})
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "collect"], env=env,
                                cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 120
        while not server.request_log and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        own_postgres.stop()
        stopped = time.monotonic()
        stdout, stderr = proc.communicate(timeout=BOUND_SECONDS + 30)
        took = time.monotonic() - stopped
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert_one_sentence_error(result, "Postgres")
    assert result.returncode == 1  # a run-time failure: run it again once Postgres is back
    assert took < BOUND_SECONDS, took
    assert own_postgres.password not in stdout + stderr
    raw, rows = _landed(home)
    assert set(rows) <= set(raw)  # nothing landed without its raw snapshot
    assert all(rows[s] == raw[s] for s in rows)  # and what landed, landed whole

    own_postgres.start()
    with SimulatorServer({KEY: FleetModel(seed=2, size=5)}) as server:
        again = run_cli("collect", home=home, env={
            **deploy_env, "VAST_API_KEY": KEY, "VAST_URL": server.url,
            "VAST_PIPELINE_CONFIG": str(config)})
    assert again.returncode == 0, again.stderr
    raw, rows = _landed(home)
    assert rows == raw and len(raw) in (1, 2)  # the interrupted snapshot, whole or absent
    with deploy_instance(deploy_env) as instance:
        runs = instance.get_runs()
    assert runs[0].status == dg.DagsterRunStatus.SUCCESS
    assert f"dagster run {runs[0].run_id} " in again.stdout
    assert all(r.status != dg.DagsterRunStatus.SUCCESS for r in runs[1:])
    print(f"\ncollect ended {took:.1f} s after Postgres stopped: {stderr.strip()}; "
          f"the interrupted run's record: {[r.status.value for r in runs[1:]]}")
