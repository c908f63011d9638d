"""The command line as a user meets it: exit codes, one-sentence errors, no tracebacks.

Runs the real console entry point in a subprocess, with a clean environment.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from pipeline.cli import main
from pipeline.fleet import FleetModel
from pipeline.quality import HISTORY_CHECKS
from pipeline.simulator import SimulatorServer

KEY = "cli-test-key-abcdef0123456789"


def run_cli(*args: str, home: Path, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("VAST_", "DAGSTER_"))}
    clean.update({"VAST_PIPELINE_HOME": str(home), **(env or {})})
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=clean,
                          capture_output=True, text=True, timeout=timeout, cwd=home)


@contextmanager
def home_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance at $VAST_PIPELINE_HOME/dagster (its dagster.yaml reads
    $DAGSTER_HOME, so that is set while the instance is open)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        with dg.DagsterInstance.get() as instance:
            yield instance


def recorded_runs(home: Path) -> list[dg.DagsterRun]:
    """The runs the home's Dagster instance knows, newest first."""
    with home_instance(home) as instance:
        return list(instance.get_runs())


def assert_one_sentence_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]


def test_collect_with_refused_key_is_one_sentence_and_writes_no_snapshot(home: Path) -> None:
    with SimulatorServer({"the-right-key": FleetModel(seed=2, size=10)}) as server:
        result = run_cli("collect", home=home,
                         env={"VAST_API_KEY": KEY, "VAST_URL": server.url})
    assert_one_sentence_error(result, "VAST_API_KEY")
    assert KEY not in result.stderr + result.stdout
    assert not (home / "raw").exists() and not (home / "parquet").exists()
    [run] = recorded_runs(home)  # what is written: the failed run's record, for the UI
    assert run.status == dg.DagsterRunStatus.FAILURE


def test_collect_from_embedded_simulator_is_a_recorded_dagster_run(home: Path) -> None:
    result = run_cli("collect", home=home)
    assert result.returncode == 0, result.stderr
    assert "instance_snapshots" in result.stdout
    assert "check unique_instance_snapshot: passed" in result.stdout
    assert len(list((home / "raw").rglob("*.ndjson.zst"))) == 1
    [run] = recorded_runs(home)  # one database for all runs, in the home's instance
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert f"dagster run {run.run_id} (DAGSTER_HOME={home / 'dagster'})" in result.stdout
    with home_instance(home) as instance:
        logs = instance.all_logs(run.run_id)
        materialized = {e.asset_key.to_user_string(): e.metadata for e in (
            r.asset_materialization for r in logs) if e is not None}
        checks = {r.dagster_event.asset_check_evaluation_data.check_name for r in logs
                  if r.dagster_event is not None
                  and r.dagster_event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    assert set(materialized) == {"raw_snapshots", "instance_snapshots"}
    assert materialized["instance_snapshots"]["rows"].value > 0
    assert checks == set(HISTORY_CHECKS)  # the run's record keeps its checks
    status = run_cli("status", home=home)
    assert status.returncode == 0
    served = next(line for line in result.stdout.splitlines()
                  if line.startswith("raw_snapshots:"))
    records = served.split("records=")[1].split(",")[0]
    assert "newest snapshot: " in status.stdout and f", {records} instances" in status.stdout


def test_an_in_process_call_leaves_the_garbage_collector_alone(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only a console process (which ends right after) runs without the cyclic collector
    # and freezes its heap at exit; a caller's process, like this test run, keeps both.
    for name in ("VAST_API_KEY", "VAST_URL", "VAST_PIPELINE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAST_PIPELINE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    frozen = gc.get_freeze_count()
    assert main(["collect"]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen


@pytest.mark.parametrize(("args", "words"), [
    (("rebuild", "--from", "2026-13-01"), ("--from", "YYYY-MM-DD")),
    (("rebuild", "--from", "2026-11-20", "--to", "2026-11-01"), ("after",)),
    (("sql", "select 1"), ("vast-pipeline build",)),
    (("collect", "--account", "nobody"), ("nobody",)),
    (("charges", "--from", "2026-11-5"), ("--from", "YYYY-MM-DD")),
    (("charges", "--from", "2026-11-20", "--to", "2026-11-01"), ("after",)),
    (("charges", "--to", str(datetime.now(UTC).date() + timedelta(days=2))), ("in the future",)),
    (("charges", "--account", "nobody"), ("nobody",)),
])
def test_mistakes_get_one_clear_sentence(home: Path, args: tuple[str, ...],
                                         words: tuple[str, ...]) -> None:
    assert_one_sentence_error(run_cli(*args, home=home), *words)


def test_unusable_output_path_is_one_sentence(home: Path) -> None:
    from sql_fixtures import RUN, every, instance_rows, write_history

    from pipeline.warehouse import build

    write_history(home, instance_rows("default", 1, every("2026-03-02 10:00", 4), [RUN] * 4,
                                      dph_base=1.0, storage_total_cost=0.1))
    build(home, cadence_minutes=15)
    blocker = home / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    result = run_cli("export", "focus", "--from", "2026-03-02", "--to", "2026-03-02",
                     "--out", str(blocker / "focus.csv"), home=home)
    assert_one_sentence_error(result, str(blocker))


def test_url_without_key(home: Path) -> None:
    result = run_cli("status", home=home, env={"VAST_URL": "http://127.0.0.1:9"})
    assert_one_sentence_error(result, "VAST_API_KEY")


def _history(home: Path) -> dict[str, int]:
    """snapshot id -> rows in the Parquet history, from the log joined to the rows."""
    import duckdb

    base = f"{home}/parquet"
    with duckdb.connect() as con:
        rows = con.execute(f"""
            select log.snapshot_id, count(rows.id)
            from read_parquet('{base}/snapshots/*/*/*.parquet') log
            left join read_parquet('{base}/instance_snapshots/*/*/*.parquet') rows
            using (snapshot_id) group by 1""").fetchall()
        [(total, distinct)] = con.execute(f"""select count(*), count(distinct (snapshot_id, id))
            from read_parquet('{base}/instance_snapshots/*/*/*.parquet')""").fetchall()
    assert total == distinct  # no instance twice in one snapshot
    return dict(rows)


def _collected(stdout: str) -> tuple[int, int]:
    """(collected, already there) from the demo's 'snapshots:' line."""
    match = re.search(r"snapshots: (\d+) collected, (\d+) already there", stdout)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))


def test_demo_twice_collects_nothing_new_and_duplicates_nothing(home: Path) -> None:
    """`make demo` run again: snapshot ids follow the moment, so what exists is skipped;
    a quarter hour later, exactly that new moment is collected."""
    args = ("demo", "--days", "2", "--size", "8")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    pinned = {"VAST_PIPELINE_NOW": now.isoformat()}
    first = run_cli(*args, home=home, env=pinned)
    assert first.returncode == 0, first.stderr
    before = _history(home)
    raw_before = len(list((home / "raw").rglob("*.ndjson.zst")))
    second = run_cli(*args, home=home, env=pinned)
    assert second.returncode == 0, second.stderr
    assert _collected(first.stdout) == (2 * 96, 0) and len(before) == raw_before == 2 * 96
    assert _collected(second.stdout) == (0, 2 * 96)
    assert _history(home) == before  # every snapshot kept, rows unchanged
    later = run_cli(*args, home=home,
                    env={"VAST_PIPELINE_NOW": (now + timedelta(minutes=15)).isoformat()})
    assert later.returncode == 0, later.stderr
    after = _history(home)
    assert _collected(later.stdout) == (1, 2 * 96 - 1)
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 1
    assert len(list((home / "raw").rglob("*.ndjson.zst"))) == raw_before + 1


def _billed_files(home: Path, day: date) -> dict[str, bytes]:
    """The stored bill of one day, byte for byte (raw and Parquet)."""
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file() and f"day={day}" in str(p)}


def test_charges_lands_each_day_and_a_failure_keeps_that_days_bill(home: Path) -> None:
    from pipeline.charges import stored_day_total
    from pipeline.storage import Store

    today = datetime.now(UTC).date()
    first, second = today - timedelta(days=9), today - timedelta(days=8)
    config = home / "fast.toml"
    config.write_text("min_interval_seconds = 0.01\n")
    with SimulatorServer({"the-right-key": FleetModel(seed=2, size=10)},
                         charges_page_size=4) as server:
        env = {"VAST_API_KEY": "the-right-key", "VAST_URL": server.url,
               "VAST_PIPELINE_CONFIG": str(config)}
        landed = run_cli("charges", "--from", str(first), "--to", str(second), home=home, env=env)
        assert landed.returncode == 0, landed.stderr
        store = Store(home)
        totals = [stored_day_total(store, "default", d) for d in (first, second)]
        assert landed.stdout.splitlines() == [f"{first}: new ${totals[0]:,.2f}",
                                              f"{second}: new ${totals[1]:,.2f}"]
        assert landed.stderr == "", "no note and no bar when piped with a key"
        status = run_cli("status", home=home, env=env)
        assert f"newest bill: {second}, ${totals[1]:,.2f}" in status.stdout
        kept = _billed_files(home, second)
        refused = run_cli("charges", "--from", str(second), "--to", str(second), home=home,
                          env={**env, "VAST_API_KEY": KEY})
        assert_one_sentence_error(refused, "VAST_API_KEY")
        assert KEY not in refused.stdout + refused.stderr
        assert _billed_files(home, second) == kept
        midnight = datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()
        first_pages = sum(1 for r in server.charges_log if r.gte == midnight)
        assert first_pages > 1
        server.fail_charges_after(first_pages, status=400)  # the second day breaks
        broken = run_cli("charges", "--from", str(first), "--to", str(second), home=home,
                         env=env)
    assert_one_sentence_error(broken, "HTTP 400")
    assert broken.stdout.splitlines() == [f"{first}: unchanged ${totals[0]:,.2f}"]
    assert _billed_files(home, second) == kept


def test_charges_without_a_key_uses_the_embedded_simulator_and_says_so(home: Path) -> None:
    day = datetime.now(UTC).date() - timedelta(days=1)
    result = run_cli("charges", "--from", str(day), "--to", str(day), home=home)
    assert result.returncode == 0, result.stderr
    assert "embedded simulator" in result.stderr
    assert result.stdout.startswith(f"{day}: new $")
    assert len(list((home / "raw_charges").rglob("*.json.zst"))) == 1
