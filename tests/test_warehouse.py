"""The warehouse machinery: model discovery and order, incremental builds, read-only access,
output formats, and analysts holding the file open while a build runs."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from sql_fixtures import RUN, at, every, instance_rows, write_history, write_log

from pipeline import warehouse
from pipeline.errors import WarehouseError

# --------------------------------------------------------------------------- discovery


def _write_models(folder: Path, models: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in models.items():
        (folder / f"{name}.sql").write_text(sql)
    return folder


def test_real_models_are_ordered_after_their_inputs() -> None:
    models = warehouse.discover_models()
    order = [m.name for m in models]
    for m in models:
        for dep in m.deps:
            assert order.index(dep) < order.index(m.name), (dep, m.name)
    by_name = {m.name: m for m in models}
    assert set(by_name["instance_intervals"].deps) >= {"instance_snapshots", "snapshots"}
    assert "instance_intervals" in by_name["incidents"].deps
    assert by_name["instance_intervals"].materialized == "daily"
    assert "grain" in by_name["cost_daily"].header.lower()
    for required in ("instance_snapshots", "instance_intervals", "cost_daily", "incidents",
                     "reliability_by_instance", "reliability_by_machine", "fleet_now",
                     "idle_spend", "price_changes"):
        assert required in by_name


def test_dependencies_come_from_identifiers_not_comments_or_strings(tmp_path: Path) -> None:
    sql_dir = _write_models(tmp_path / "sql", {
        "zeta": "-- zeta: base\nselect 1 as x",
        "alpha": "-- alpha: reads zeta, not beta (comment)\n"
                 "select x, 'beta' as s from zeta /* beta */",
        "beta": "-- beta: reads alpha\nwith t as (select * from alpha) select * from t",
    })
    models = warehouse.discover_models(sql_dir)
    assert [m.name for m in models] == ["zeta", "alpha", "beta"]
    assert models[1].deps == ("zeta",)
    assert models[2].deps == ("alpha",)


def test_cycle_is_a_clear_error(tmp_path: Path) -> None:
    sql_dir = _write_models(tmp_path / "sql", {
        "a": "-- a\nselect * from b", "b": "-- b\nselect * from a",
    })
    with pytest.raises(WarehouseError, match="cycle"):
        warehouse.discover_models(sql_dir)


def test_unknown_relation_is_a_clear_error(tmp_path: Path) -> None:
    sql_dir = _write_models(tmp_path / "sql", {"a": "-- a\nselect * from nowhere"})
    with pytest.raises(WarehouseError, match=r"unknown relation.*nowhere"):
        warehouse.discover_models(sql_dir)


def test_model_without_header_is_refused(tmp_path: Path) -> None:
    sql_dir = _write_models(tmp_path / "sql", {"a": "select 1"})
    with pytest.raises(WarehouseError, match="must start with a comment"):
        warehouse.discover_models(sql_dir)


# --------------------------------------------------------------------------- history


def _random_day(day: date, rng: random.Random) -> list[dict]:
    """Four instances over one day of 15-minute snapshots with stops, outages, repricing,
    and a collection gap at the end of day 2 that runs past midnight."""
    times = every(f"{day.isoformat()} 00:00", 96)
    if day == date(2024, 5, 2):
        times = [t for t in times if t.hour < 23]  # collector down 23:00 .. 00:30
    if day == date(2024, 5, 3):
        times = [t for t in times if t.hour > 0 or t.minute >= 30]
    rows = []
    for iid in (1, 2, 3, 4):
        price = 1.0 + iid / 10
        for t in times:
            state = dict(RUN)
            roll = rng.random()
            if iid == 2 and t.hour >= 22:
                state = {"actual_status": "offline", "intended_status": "running"}
            elif roll < 0.05:
                state = {"actual_status": "exited", "intended_status": "stopped"}
            elif roll < 0.08:
                state["actual_status"] = "unknown"
            if iid == 4 and rng.random() < 0.05:
                price = round(price * rng.uniform(0.8, 1.2), 4)
            if iid == 3 and day == date(2024, 5, 1) and t.hour < 2:
                state["actual_status"] = "loading"
            rows += instance_rows("acct", iid, [t], [state], dph_base=price,
                                  dph_total=price + 0.05, storage_total_cost=0.05,
                                  gpu_util=rng.choice([0.0, 1.0, 55.0, 90.0]), num_gpus=iid,
                                  host_id=100 + iid % 2, machine_id=iid, is_bid=iid == 4,
                                  reliability2=0.9 + iid / 100)
    return rows


def _history(home: Path, days: list[date], seed: int = 3) -> None:
    for d in days:
        write_history(home, _random_day(d, random.Random(f"{seed}-{d}")))


def _snapshot_of_models(home: Path) -> dict[str, list[tuple]]:
    out = {}
    for model in warehouse.discover_models():
        res = warehouse.query(home, f"SELECT * FROM {model.name}")
        rows = [tuple(round(v, 9) if isinstance(v, float) else
                      (tuple(v) if isinstance(v, list) else v) for v in row) for row in res.rows]
        out[model.name] = sorted(rows, key=repr)
    return out


DAYS = [date(2024, 5, 1) + timedelta(days=i) for i in range(3)]


def test_incremental_build_equals_full_build(tmp_path: Path) -> None:
    inc, full = tmp_path / "inc", tmp_path / "full"
    _history(inc, DAYS[:2])
    first = warehouse.build(inc)
    assert first.full and first.window == (DAYS[0], DAYS[1])
    _history(inc, DAYS[2:])
    second = warehouse.build(inc)
    assert not second.full
    # the new day, plus the day before (its last intervals end in the new day)
    assert second.window == (DAYS[1], DAYS[2]) and second.days_recomputed == 2
    _history(full, DAYS)
    warehouse.build(full)
    got, want = _snapshot_of_models(inc), _snapshot_of_models(full)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name
    # the scenario really crosses midnight in an incident and has price changes
    assert got["price_changes"]
    spans = warehouse.query(inc, "SELECT count(*) FROM incidents WHERE instance_id = 2 "
                            "AND CAST(ended_at AS DATE) > CAST(started_at AS DATE)")
    assert spans.rows[0][0] >= 1


def test_build_with_nothing_new_recomputes_no_day(tmp_path: Path) -> None:
    _history(tmp_path, DAYS[:1])
    warehouse.build(tmp_path)
    again = warehouse.build(tmp_path)
    assert again.window is None and again.days_recomputed == 0
    assert warehouse.query(tmp_path, "SELECT count(*) FROM instance_intervals").rows[0][0] > 0


def test_rewritten_past_day_is_recomputed(tmp_path: Path) -> None:
    _history(tmp_path, DAYS)
    warehouse.build(tmp_path)
    before = warehouse.query(tmp_path, "SELECT sum(total_cost) FROM cost_daily").rows[0][0]
    # a rebuild from the raw zone rewrites day 1 with a doubled GPU price for instance 1
    rows = _random_day(DAYS[0], random.Random(f"3-{DAYS[0]}"))
    for r in rows:
        if r["id"] == 1:
            r["dph_base"] *= 2
    write_history(tmp_path, rows)
    res = warehouse.build(tmp_path)
    assert res.window == (DAYS[0], DAYS[2])
    after = warehouse.query(tmp_path, "SELECT sum(total_cost) FROM cost_daily").rows[0][0]
    assert after > before


def test_full_flag_and_cadence_change_rebuild_everything(tmp_path: Path) -> None:
    _history(tmp_path, DAYS[:2])
    warehouse.build(tmp_path)
    assert warehouse.build(tmp_path, full=True).full
    capped = warehouse.build(tmp_path, cadence_minutes=5)  # cap 10 min: a different answer
    assert capped.full
    row = warehouse.query(tmp_path, "SELECT max(hours), any_value(cap_minutes) "
                          "FROM instance_intervals, build_info").rows[0]
    assert row == (pytest.approx(10 / 60), 10)


def test_account_with_empty_snapshots_only(tmp_path: Path) -> None:
    write_log(tmp_path, {("empty", at("2024-05-01 10:00")): 0,
                         ("empty", at("2024-05-01 10:15")): 0})
    warehouse.build(tmp_path)
    assert warehouse.query(tmp_path, "SELECT count(*) FROM cost_daily").rows == [(0,)]
    assert warehouse.query(tmp_path, "SELECT count(*) FROM snapshots").rows == [(2,)]


def test_no_history_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match=r"No snapshots under .*collect"):
        warehouse.build(tmp_path)


# --------------------------------------------------------------------------- querying


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("built")
    rows = instance_rows("a", 1, every("2024-05-01 10:00", 3), [RUN] * 3, dph_base=1.0,
                         storage_total_cost=0.5, label="x,y")
    write_history(home, rows)
    warehouse.build(home)
    return home


def test_missing_warehouse(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match=r"No warehouse at .*run `vast-pipeline build`"):
        warehouse.query(tmp_path, "SELECT 1")
    with pytest.raises(WarehouseError, match=r"^No warehouse at .*run `vast-pipeline build`"):
        warehouse.open_read_only(tmp_path)


def test_open_read_only_is_read_only_and_utc(built: Path) -> None:
    con = warehouse.open_read_only(built)
    try:
        assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
        assert con.execute("SELECT count(*) FROM cost_daily").fetchone() == (1,)
        with pytest.raises(duckdb.Error, match=r"read.only"):
            con.execute("CREATE TABLE t AS SELECT 1")
    finally:
        con.close()


def test_warehouse_open_for_writing_is_one_sentence(tmp_path: Path) -> None:
    writer = duckdb.connect(str(tmp_path / warehouse.DB_NAME))  # an analyst's session
    try:
        with pytest.raises(WarehouseError) as err:
            warehouse.open_read_only(tmp_path)
    finally:
        writer.close()
    message = str(err.value)
    assert message.startswith(f"Cannot open {tmp_path.resolve() / warehouse.DB_NAME} read-only (")
    assert message.endswith("close that and try again.") and "\n" not in message


def test_first_line_drops_hints_and_the_final_period() -> None:
    assert warehouse.first_line(ValueError("Binder Error: no such column.\nLINE 1: x")) == (
        "Binder Error: no such column")
    assert warehouse.first_line(ValueError("")) == "ValueError"


@pytest.mark.parametrize("sql", [
    "CREATE TABLE mine AS SELECT 1",
    "INSERT INTO fleet_now SELECT * FROM fleet_now",
    "DROP VIEW cost_daily",
    "COPY (SELECT 1) TO 'out.csv'",
    "ATTACH 'other.duckdb' AS other",
    "SELECT 1; DELETE FROM incidents",
])
def test_query_refuses_writes(built: Path, sql: str) -> None:
    with pytest.raises(WarehouseError, match="read-only"):
        warehouse.query(built, sql)
    assert warehouse.query(built, "SELECT count(*) FROM cost_daily").rows == [(1,)]


def test_read_only_mode_backs_the_statement_check(built: Path) -> None:
    con = duckdb.connect(str(built / warehouse.DB_NAME), read_only=True)
    try:
        with pytest.raises(duckdb.Error, match=r"read.only"):
            con.execute("CREATE TABLE t AS SELECT 1")
    finally:
        con.close()


def test_unknown_table_names_the_known_ones(built: Path) -> None:
    with pytest.raises(WarehouseError) as err:
        warehouse.query(built, "SELECT * FROM cost_dialy")
    message = str(err.value)
    assert message.startswith("Table 'cost_dialy' does not exist; known tables: ")
    assert "cost_daily" in message and "\n" not in message


def test_bad_sql_is_one_sentence(built: Path) -> None:
    with pytest.raises(WarehouseError) as err:
        warehouse.query(built, "SELEC 1")
    assert "\n" not in str(err.value) and "parsed" in str(err.value)


def test_query_with_params(built: Path) -> None:
    res = warehouse.query(built, "SELECT instance_id FROM cost_daily WHERE account = ?",
                          params=["a"])
    assert res.columns == ["instance_id"] and res.rows == [(1,)]


def test_csv_json_and_table_formats(built: Path) -> None:
    res = warehouse.query(built, "SELECT account, instance_id, label, total_cost, "
                          "cost_per_gpu_hour FROM cost_daily")
    # 2 intervals of .25 h at $1 GPU + $.5 storage = $.75
    assert warehouse.format_result(res, "csv") == (
        "account,instance_id,label,total_cost,cost_per_gpu_hour\na,1,\"x,y\",0.75,\n")
    assert '"total_cost": 0.75' in warehouse.format_result(res, "json")
    table = warehouse.format_result(res, "table").splitlines()
    assert table[0].split() == res.columns and table[-1] == "(1 row)"
    assert "NULL" in table[2]
    with pytest.raises(WarehouseError, match="Unknown format"):
        warehouse.format_result(res, "xml")


def test_works_from_any_working_directory(built: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    con = duckdb.connect(str(built / warehouse.DB_NAME), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM instance_intervals").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM instance_snapshots").fetchone() == (3,)
    finally:
        con.close()


def test_plain_duckdb_cli_opens_the_warehouse(built: Path, tmp_path: Path) -> None:
    """Analysts use the `duckdb` command, a release behind the Python package on PyPI."""
    cli = Path(sys.executable).with_name("duckdb")
    assert cli.exists(), "the duckdb CLI (PyPI duckdb-cli, a dependency) is missing: make install"
    result = subprocess.run(
        [str(cli), "-readonly", "-csv", str(built / warehouse.DB_NAME), "-c",
         "select count(*) as n from instance_intervals; "
         "select round(sum(total_cost), 6) as usd from cost_daily"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    expected = warehouse.query(built, "select round(sum(total_cost), 6) from cost_daily").rows
    lines = result.stdout.split()
    assert lines[:3] == ["n", "2", "usd"]
    assert float(lines[3]) == pytest.approx(expected[0][0])


# --------------------------------------------------------------------------- concurrency


ANALYST = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
for line in sys.stdin:
    print(repr(con.execute(line).fetchall()), flush=True)
"""


def test_analyst_holding_the_old_file_keeps_a_consistent_read(tmp_path: Path) -> None:
    # The analyst is another process, as in real life (DuckDB shares one open database per
    # path within a process, so an in-process reader would hide the new file).
    t = every("2024-05-01 10:00", 3)
    write_history(tmp_path, instance_rows("a", 1, t, [RUN] * 3, dph_base=1.0))
    warehouse.build(tmp_path)
    analyst = subprocess.Popen(
        [sys.executable, "-c", ANALYST, str(tmp_path / warehouse.DB_NAME)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(sql: str) -> str:
        assert analyst.stdin and analyst.stdout
        analyst.stdin.write(sql + "\n")
        analyst.stdin.flush()
        return analyst.stdout.readline().strip()

    try:
        assert ask("SELECT sum(gpu_cost) FROM cost_daily") == "[(0.5,)]"
        # a new day of snapshots arrives and the warehouse is rebuilt while it is open
        t2 = every("2024-05-02 10:00", 3)
        write_history(tmp_path, instance_rows("a", 1, t2, [RUN] * 3, dph_base=1.0))
        res = warehouse.build(tmp_path)
        assert res.window == (date(2024, 5, 1), date(2024, 5, 2))
        # the open session still reads the old, consistent data (tables and Parquet views)
        assert ask("SELECT sum(gpu_cost) FROM cost_daily") == "[(0.5,)]"
        assert ask("SELECT count(*) FROM instance_intervals") == "[(2,)]"
        assert ask("SELECT count(*) FROM incidents") == "[(0,)]"
        # a new session sees the new data: 10:30 now has an interval, capped at 30 min
        new = warehouse.query(tmp_path, "SELECT count(*), sum(gpu_cost) FROM instance_intervals")
        assert new.rows == [(5, pytest.approx(0.25 * 4 + 0.5))]
    finally:
        assert analyst.stdin
        analyst.stdin.close()
        analyst.wait(timeout=30)


def test_failed_build_leaves_the_previous_warehouse(tmp_path: Path) -> None:
    write_history(tmp_path, instance_rows("a", 1, every("2024-05-01 10:00", 3), [RUN] * 3,
                                          dph_base=1.0))
    warehouse.build(tmp_path)
    bad = tmp_path / "sql"
    shutil.copytree(warehouse.SQL_DIR, bad)
    (bad / "cost_daily.sql").write_text("-- broken\nselect no_such_column from instance_daily")
    with pytest.raises(WarehouseError, match=r"Model cost_daily .*failed"):
        warehouse.build(tmp_path, sql_dir=bad)
    assert warehouse.query(tmp_path, "SELECT sum(gpu_cost) FROM cost_daily").rows == [(0.5,)]
    assert not list(tmp_path.glob(".warehouse.duckdb.*"))
