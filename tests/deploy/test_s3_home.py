"""Two machines, one s3:// home and one Postgres: nothing shared on local disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.support.cli import clean_env
from tests.support.postgres import PostgresServer, deploy_dagster_home, deploy_instance
from tests.support.s3_server import BUCKET, S3Server


def _machine(root: Path, s3: S3Server, home: str, pg_env: dict[str, str]) -> dict[str, str]:
    """A machine of its own: working directory, cache, HOME and DAGSTER_HOME under `root`."""
    for sub in ("cache", "user"):
        (root / sub).mkdir(parents=True)
    return {**s3.env(VAST_PIPELINE_HOME=home, VAST_PIPELINE_CACHE=str(root / "cache")),
            **pg_env, "HOME": str(root / "user"),
            "DAGSTER_HOME": str(deploy_dagster_home(root / "dagster_home"))}


def _run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", *args],
                            env=clean_env(env["VAST_PIPELINE_HOME"], env), cwd=root,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    return result


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file()}


def _run_id(result: subprocess.CompletedProcess[str]) -> str:
    [line] = [line for line in result.stdout.splitlines() if line.startswith("dagster run ")]
    return line.split()[2]


@pytest.mark.slow
def test_collect_on_one_machine_build_and_report_on_another(
        tmp_path: Path, s3: S3Server, postgres: PostgresServer) -> None:
    home = f"s3://{BUCKET}/{tmp_path.name}"
    pg_env = postgres.create_database(f"s3_{tmp_path.name[-12:].lower()}")
    a, b = tmp_path / "machine_a", tmp_path / "machine_b"
    env_a, env_b = _machine(a, s3, home, pg_env), _machine(b, s3, home, pg_env)
    ids = [_run_id(_run(a, env_a, "collect")) for _ in range(2)]
    before = _files(a)
    ids.append(_run_id(_run(b, env_b, "collect")))
    _run(b, env_b, "build")
    [report] = _run(b, env_b, "report", "cost").stdout.split()
    assert _files(a) == before  # machine B never touched machine A's disk
    assert Path(report).is_relative_to(b / "cache") and Path(report).stat().st_size > 0
    # The history is on S3, not on either disk; both machines' runs are in Postgres.
    prefix = tmp_path.name
    raw = [k for k in s3.keys(prefix) if k.startswith(f"{prefix}/raw/")]
    assert len(raw) == 3
    assert not [p for p in (*a.rglob("*.ndjson.zst"), *b.rglob("*.ndjson.zst"))]
    with deploy_instance({"DAGSTER_HOME": env_b["DAGSTER_HOME"], **pg_env}) as instance:
        runs = instance.get_runs()
    assert sorted(r.run_id for r in runs) == sorted(ids)
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    # B's warehouse holds A's snapshots too: three snapshots, read from the bucket.
    counted = _run(b, env_b, "sql", "select count(distinct snapshot_at) as n "
                   "from instance_snapshots", "--format", "json")
    assert json.loads(counted.stdout) == [{"n": 3}]
    assert (b / "cache" / "warehouse.duckdb").exists()
    assert not (a / "cache" / "warehouse.duckdb").exists()
