"""`vast-pipeline collect` on the shipped deploy/dagster.yaml: its runs are in Postgres."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from tests.support.cli import clean_env, run_cli
from tests.support.postgres import PostgresServer, deploy_instance


def test_collect_records_its_run_and_materializations_in_postgres(
        home: Path, deploy_env: dict[str, str], postgres: PostgresServer) -> None:
    result = run_cli("collect", home=home, env=deploy_env)
    assert result.returncode == 0, result.stderr
    with deploy_instance(deploy_env) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_storage._engine.dialect.driver == "psycopg2"
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert f"dagster run {run.run_id} " in result.stdout
        landed = instance.fetch_materializations(
            dg.AssetKey("landed_instance_snapshots"), limit=10).records
        raw = instance.fetch_materializations(dg.AssetKey("raw_snapshots"), limit=10).records
    assert [r.run_id for r in landed] == [run.run_id] == [r.run_id for r in raw]
    rows = duckdb.execute(
        f"select count(*) from read_parquet('{home}/parquet/instance_snapshots/*/*/*.parquet')"
    ).fetchone()[0]
    assert landed[0].asset_materialization.metadata["rows"].value == rows > 0
    # Read back by Postgres itself, not only through Dagster: the run row is there, and
    # nothing fell back to SQLite files in DAGSTER_HOME.
    db = deploy_env["DAGSTER_PG_DB"]
    assert postgres.psql("select run_id, status from runs;", db=db).split() == [
        f"{run.run_id}|SUCCESS"]
    stored = postgres.psql("select count(*) from event_logs where run_id = "
                           f"'{run.run_id}' and dagster_event_type = 'ASSET_MATERIALIZATION';",
                           db=db)
    assert int(stored) == 2
    assert not list(Path(deploy_env["DAGSTER_HOME"]).rglob("*.db"))


def test_two_collects_at_once_both_land_once_with_both_runs_recorded(
        home: Path, deploy_env: dict[str, str]) -> None:
    """Two processes create the schema, write their events and land the same day at once."""
    env = clean_env(home, deploy_env)
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline.cli", "collect"], env=env,
                              cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    with deploy_instance(deploy_env) as instance:
        runs = instance.get_runs()
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS} and len(runs) == 2
        landed = instance.fetch_materializations(
            dg.AssetKey("landed_instance_snapshots"), limit=10).records
    assert sorted(r.run_id for r in landed) == sorted(r.run_id for r in runs)
    assert len(list((home / "raw").rglob("*.ndjson.zst"))) == 2
    glob = f"{home}/parquet/instance_snapshots/*/*/*.parquet"
    per_snapshot = duckdb.execute(
        f"select snapshot_at, count(*), count(distinct (account, id)) from read_parquet('{glob}') "
        "group by snapshot_at").fetchall()
    assert len(per_snapshot) == 2
    assert all(rows == distinct > 0 for _, rows, distinct in per_snapshot)
    assert sum(r.asset_materialization.metadata["rows"].value for r in landed) == sum(
        rows for _, rows, _ in per_snapshot)
