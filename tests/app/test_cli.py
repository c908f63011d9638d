"""The command line as a user meets it: exit codes, one-sentence errors, no tracebacks.

Runs the real console entry point in a subprocess, with a clean environment.
"""

from __future__ import annotations

import gc
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from pipeline.cli import main
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import SimulatorServer
from pipeline.warehouse.quality import HISTORY_CHECKS
from tests.support.cli import assert_one_sentence_error, home_instance, recorded_runs, run_cli
from tests.support.warehouse import build_at_cadence

KEY = "cli-test-key-abcdef0123456789"


def test_collect_with_refused_key_is_one_sentence_and_writes_no_snapshot(home: Path) -> None:
    with SimulatorServer({"the-right-key": FleetModel(seed=2, size=10)}) as server:
        result = run_cli("collect", home=home,
                         env={"VAST_API_KEY": KEY, "VAST_URL": server.url})
    assert_one_sentence_error(result, "VAST_API_KEY")
    assert result.returncode == 2  # the key is the user's to correct, as through `charges`
    assert KEY not in result.stderr + result.stdout
    assert not (home / "raw").exists() and not (home / "parquet").exists()
    [run] = recorded_runs(home)  # what is written: the failed run's record, for the UI
    assert run.status == dg.DagsterRunStatus.FAILURE


def test_collect_from_embedded_simulator_is_a_recorded_dagster_run(home: Path) -> None:
    result = run_cli("collect", home=home)
    assert result.returncode == 0, result.stderr
    assert "landed_instance_snapshots: " in result.stdout
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
    assert set(materialized) == {"raw_snapshots", "landed_instance_snapshots"}
    assert materialized["landed_instance_snapshots"]["rows"].value > 0
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
    from tests.support.sql_fixtures import RUN, every, instance_rows, write_history

    write_history(home, instance_rows("default", 1, every("2026-03-02 10:00", 4), [RUN] * 4,
                                      dph_base=1.0, storage_total_cost=0.1))
    build_at_cadence(home)
    blocker = home / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    result = run_cli("export", "focus", "--from", "2026-03-02", "--to", "2026-03-02",
                     "--out", str(blocker / "focus.csv"), home=home)
    assert_one_sentence_error(result, str(blocker))
    assert result.returncode == 2  # the path the user gave


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
    _check_the_dagster_ui_shows_the_demo(home, first.stdout)
    before = _history(home)
    raw_before = len(list((home / "raw").rglob("*.ndjson.zst")))
    second = run_cli(*args, home=home, env=pinned)
    assert second.returncode == 0, second.stderr
    assert _collected(first.stdout) == (2 * 96, 0) and len(before) == raw_before == 2 * 96
    assert _collected(second.stdout) == (0, 2 * 96)
    assert "market: 48 snapshots of the offer search taken (every 60 minutes), 0 already " \
        "there" in first.stdout
    assert "market: 0 snapshots of the offer search taken (every 60 minutes), 48 already " \
        "there" in second.stdout
    assert _history(home) == before  # every snapshot kept, rows unchanged
    later = run_cli(*args, home=home,
                    env={"VAST_PIPELINE_NOW": (now + timedelta(minutes=15)).isoformat()})
    assert later.returncode == 0, later.stderr
    after = _history(home)
    assert _collected(later.stdout) == (1, 2 * 96 - 1)
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 1
    assert len(list((home / "raw").rglob("*.ndjson.zst"))) == raw_before + 1


def _check_the_dagster_ui_shows_the_demo(home: Path, stdout: str) -> None:
    """The demo's Dagster instance holds a materialization of every asset the demo
    materialized (per day for the daily ones), with the metadata of the asset's own, read
    here independently from the Parquet and the warehouse; and no run, as the demo says."""
    import duckdb

    from assets.definitions import defs

    assert "the assets show what this demo materialized" in stdout
    base = f"{home}/parquet"
    with duckdb.connect() as con:
        rows = dict(con.execute(
            f"select snapshot_date::varchar, count(*) from read_parquet("
            f"'{base}/instance_snapshots/*/*/*.parquet') group by 1").fetchall())
        bills = dict(con.execute(
            f"select day::varchar, sum(total_amount) from read_parquet("
            f"'{base}/billed_days/*/*/*.parquet') group by 1").fetchall())
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        [(build_id,)] = con.execute("select build_id from build_info").fetchall()
    html = {Path(line.strip()).name.split("_")[0]: line.strip() for line in stdout.splitlines()
            if line.strip().endswith(".html")}
    with home_instance(home) as instance:
        assert not instance.get_runs()  # recorded, not run
        latest = {key.to_user_string(): instance.get_latest_materialization_event(key)
                  for key in defs.resolve_asset_graph().get_all_asset_keys()}
        missing = sorted(name for name, event in latest.items() if event is None)
        assert missing == ["cost_report_month_to_date"]  # the demo does not write that one
        for name in ("raw_snapshots", "landed_instance_snapshots"):
            key = dg.AssetKey(name)
            assert instance.get_materialized_partitions(key) == set(rows)
        for day, count in rows.items():
            [event] = instance.fetch_materializations(
                dg.AssetRecordsFilter(dg.AssetKey("landed_instance_snapshots"),
                                      asset_partitions=[day]), limit=1).records
            assert event.asset_materialization.metadata["rows"].value == count
        market = latest["landed_market_snapshots"].asset_materialization.metadata
        with duckdb.connect() as con:
            newest = con.execute(
                f"select snapshot_id, offers from read_parquet('{base}/market_snapshots/*/"
                "*.parquet') order by snapshot_at desc limit 1").fetchone()
        assert (market["snapshot_id"].value, market["offers"].value) == newest
        assert instance.get_materialized_partitions(
            dg.AssetKey("landed_billed_charges")) == set(bills)
        for day, total in bills.items():
            [event] = instance.fetch_materializations(
                dg.AssetRecordsFilter(dg.AssetKey("landed_billed_charges"),
                                      asset_partitions=[day]), limit=1).records
            assert event.asset_materialization.metadata["total"].value == pytest.approx(
                total, abs=1e-3)
    models = [name for name in latest if name.startswith("warehouse/")]
    assert models and all(latest[name].asset_materialization.metadata["build_id"].text
                          == build_id for name in models)
    for kind in ("cost", "reliability"):
        report = latest[f"{kind}_report"].asset_materialization
        assert report.metadata["html"].path == html[kind]
    assert all("vast-pipeline demo" in event.asset_materialization.description
               for event in latest.values() if event is not None)


def _billed_files(home: Path, day: date) -> dict[str, bytes]:
    """The stored bill of one day, byte for byte (raw and Parquet)."""
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file() and f"day={day}" in str(p)}


def test_charges_lands_each_day_and_a_failure_keeps_that_days_bill(home: Path) -> None:
    from pipeline.billing import stored_day_total
    from pipeline.storage.store import Store

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
        assert refused.returncode == 2
        assert KEY not in refused.stdout + refused.stderr
        assert _billed_files(home, second) == kept
        midnight = datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()
        first_pages = sum(1 for r in server.charges_log if r.gte == midnight)
        assert first_pages > 1
        server.fail_charges_after(first_pages, status=400)  # the second day breaks
        broken = run_cli("charges", "--from", str(first), "--to", str(second), home=home,
                         env=env)
    assert_one_sentence_error(broken, "HTTP 400")
    assert broken.returncode == 1  # the API failed at run time
    assert broken.stdout.splitlines() == [f"{first}: unchanged ${totals[0]:,.2f}"]
    assert _billed_files(home, second) == kept


def test_charges_without_a_key_uses_the_embedded_simulator_and_says_so(home: Path) -> None:
    day = datetime.now(UTC).date() - timedelta(days=1)
    result = run_cli("charges", "--from", str(day), "--to", str(day), home=home)
    assert result.returncode == 0, result.stderr
    assert "embedded simulator" in result.stderr
    assert result.stdout.startswith(f"{day}: new $")
    assert len(list((home / "raw_charges").rglob("*.json.zst"))) == 1


# --------------------------------------------------------------------------- exit codes
# 2: what the user must correct (an argument, a value in the environment or the config
# file, an unknown account); 1: what failed at run time (the API, the network, the data).

HISTORY_DAY = "2026-03-02"


@pytest.fixture(scope="module")
def two_account_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built warehouse holding `default` (configured: the embedded simulator's account)
    and `research`, whose history is here although no account of that name is configured
    (an analyst's machine reading a shared home)."""
    from tests.support.sql_fixtures import RUN, every, instance_rows, write_history

    home = tmp_path_factory.mktemp("two_accounts")
    for account, instance in (("default", 1), ("research", 2)):
        write_history(home, instance_rows(account, instance, every(f"{HISTORY_DAY} 10:00", 4),
                                          [RUN] * 4, dph_base=1.0, storage_total_cost=0.1))
    build_at_cadence(home)
    return home


def _exit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`vast-pipeline ARGS` in this process: its exit code and its one stderr line."""
    code = main(list(args))
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.strip() and not line.startswith("note: ")]
    assert len(err) == (code != 0), err
    assert "Traceback" not in "".join(err)
    return code, err[0] if err else ""


UNKNOWN_IN_HISTORY = ("error: No account named 'nobody' is configured or in the history "
                      "(known: default, research).")
UNKNOWN_TO_FETCH = "error: No account named 'nobody' is configured (known: default)."


@pytest.mark.parametrize(("args", "line"), [
    (("report", "cost", "--account", "nobody"), UNKNOWN_IN_HISTORY),
    (("report", "reliability", "--account", "nobody"), UNKNOWN_IN_HISTORY),
    (("export", "focus", "--account", "nobody", "--out", "focus.csv"), UNKNOWN_IN_HISTORY),
    (("rebuild", "--account", "nobody"), UNKNOWN_IN_HISTORY),
    (("collect", "--account", "nobody"), UNKNOWN_TO_FETCH),
    (("charges", "--account", "nobody"), UNKNOWN_TO_FETCH),
    (("collect", "--account", "research"), "error: Account 'research' has history in "
     "{home} but is not configured, so it cannot be fetched: add it to [[accounts]] in the "
     "config file (configured: default)."),
])
def test_an_unknown_account_is_one_rule_for_every_command(
        two_account_home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], args: tuple[str, ...], line: str) -> None:
    monkeypatch.setenv("VAST_PIPELINE_HOME", str(two_account_home))
    monkeypatch.chdir(two_account_home)
    assert _exit(capsys, *args) == (2, line.format(home=two_account_home))


def test_an_account_known_from_the_history_is_reported(
        two_account_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAST_PIPELINE_HOME", str(two_account_home))
    window = ("--from", HISTORY_DAY, "--to", HISTORY_DAY)
    assert main(["report", "cost", *window, "--account", "research", "--format", "md",
                 "--out", str(tmp_path)]) == 0
    [written] = capsys.readouterr().out.split()
    assert written.endswith("_research.md") and Path(written).is_file()
    # a known account without data in the window is the data's answer: exit 1
    code, line = _exit(capsys, "report", "cost", "--from", "2027-01-01", "--to", "2027-01-02",
                       "--account", "research", "--out", str(tmp_path))
    assert code == 1 and line.startswith("error: No data for account research between")


def _future(days: int) -> str:
    return str(datetime.now(UTC).date() + timedelta(days=days))


@pytest.mark.parametrize(("args", "env", "code", "start", "absent"), [
    (("rebuild", "--from", "2026-13-01"), {}, 2, "error: --from 2026-13-01 is not a date", ""),
    (("rebuild", "--from", "2026-11-20", "--to", "2026-11-01"), {}, 2,
     "error: --from 2026-11-20 is after --to 2026-11-01", ""),
    (("report", "cost", "--from", "2026-02-30"), {}, 2, "error: --from 2026-02-30 is not a", ""),
    (("report", "cost", "--from", "2026-03-05", "--to", "2026-03-01"), {}, 2,
     "error: --from 2026-03-05 is after --to 2026-03-01", ""),
    (("export", "focus", "--out", "focus.txt"), {}, 2,
     "error: focus.txt must end in .parquet or .csv", ""),
    (("charges", "--from", _future(30)), {}, 2,
     f"error: --from {_future(30)} is in the future (today is ", "--to"),
    (("charges", "--from", _future(30), "--to", _future(31)), {}, 2,
     f"error: --from {_future(30)} and --to {_future(31)} are in the future", ""),
    (("charges", "--to", _future(2)), {}, 2, f"error: --to {_future(2)} is in the future", ""),
    (("charges", "--from", "2026-11-20", "--to", "2026-11-01"), {}, 2,
     "error: --from 2026-11-20 is after --to 2026-11-01", ""),
    (("status",), {"VAST_PIPELINE_CADENCE_MINUTES": "7"}, 2,
     "error: Cadence '7' (VAST_PIPELINE_CADENCE_MINUTES) is not usable", ""),
    (("status",), {"VAST_API_KEY": "k-0123456789", "VAST_URL": "console.vast.ai"}, 2,
     "error: URL 'console.vast.ai' (VAST_URL) is not an http(s) URL", ""),
    (("simulator", "--size", "0"), {}, 2, "error: --size 0 is out of range", ""),
    (("simulator", "--port", "99999"), {}, 2, "error: --port 99999 is not a port", ""),
    (("simulator", "--drift-rate", "2"), {}, 2, "error: --drift-rate 2.0 is out of range", ""),
    (("alerts", "--limit", "-3"), {}, 2, "error: --limit -3 is negative", ""),
    (("demo", "--days", "0"), {}, 2, "error: --days 0 is out of range", ""),
    (("report", "cost"), {}, 1, "error: No warehouse at ", ""),
    (("export", "focus", "--out", "focus.csv"), {}, 1, "error: No warehouse at ", ""),
    (("sql", "select 1"), {}, 1, "error: No warehouse at ", ""),
])
def test_exit_2_for_what_the_user_corrects_and_1_for_run_time_failures(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: tuple[str, ...], env: dict[str, str], code: int, start: str,
        absent: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(home)
    got, line = _exit(capsys, *args)
    assert (got, line[:len(start)]) == (code, start), line
    assert not absent or absent not in line


def test_a_port_in_use_is_named_as_a_port(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, line = _exit(capsys, "simulator", "--port", str(port))
    assert code == 2 and line.startswith(f"error: Cannot listen on 127.0.0.1:{port} (")
    assert line.endswith("pick another --port, or 0 for any free one.")


def test_a_bad_setting_in_the_config_file_names_the_file_and_key(
        home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = home / "settings.toml"
    monkeypatch.setenv("VAST_PIPELINE_CONFIG", str(config))
    for text, named in (("cadence_minutes = 45\n", f"Cadence 45 (`cadence_minutes` in {config})"),
                        ("min_interval_seconds = -1\n", f"`min_interval_seconds` in {config}"),
                        ('home = "s3://"\n', f"`home` in {config} needs a bucket")):
        config.write_text(text, encoding="utf-8")
        monkeypatch.delenv("VAST_PIPELINE_HOME")
        code, line = _exit(capsys, "status")
        assert code == 2 and named in line, line
        monkeypatch.setenv("VAST_PIPELINE_HOME", str(home))
