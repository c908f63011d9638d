"""The warehouse build: incremental equals full, and every promise the README makes about
faults (a killed build, two builds at once, an analyst reading across a build) holds on
real DuckDB files, real Parquet and real processes."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from sql_fixtures import RUN, at, every, instance_rows, write_history, write_log

from pipeline import warehouse
from pipeline.errors import WarehouseError
from pipeline.models import SQL_DIR, discover_models
from pipeline.query import query

CADENCE = 15
REPO = Path(__file__).resolve().parents[1]


def _build(home: Path, **options: object) -> warehouse.BuildResult:
    return warehouse.build(home, cadence_minutes=CADENCE, **options)




def _random_day(day: date, rng: random.Random, account: str = "acct",
                instances: tuple[int, ...] = (1, 2, 3, 4)) -> list[dict]:
    """Instances (four by default) over one day of 15-minute snapshots with stops, outages,
    repricing, and a collection gap at the end of day 2 that runs past midnight."""
    times = every(f"{day.isoformat()} 00:00", 96)
    if day == date(2024, 5, 2):
        times = [t for t in times if t.hour < 23]  # collector down 23:00 .. 00:30
    if day == date(2024, 5, 3):
        times = [t for t in times if t.hour > 0 or t.minute >= 30]
    rows = []
    for iid in instances:
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
            rows += instance_rows(account, iid, [t], [state], dph_base=price,
                                  dph_total=price + 0.05, storage_total_cost=0.05,
                                  gpu_util=rng.choice([0.0, 1.0, 55.0, 90.0]), num_gpus=iid,
                                  host_id=100 + iid % 2, machine_id=iid, is_bid=iid == 4,
                                  reliability2=0.9 + iid / 100)
    return rows


def _history(home: Path, days: list[date], seed: int = 3, account: str = "acct",
             instances: tuple[int, ...] = (1, 2, 3, 4)) -> None:
    for d in days:
        write_history(home, _random_day(d, random.Random(f"{seed}-{account}-{d}"), account,
                                        instances))


def _snapshot_of_models(home: Path) -> dict[str, list[tuple]]:
    out = {}
    for model in discover_models():
        res = query(home, f"SELECT * FROM {model.name}")
        rows = [tuple(round(v, 9) if isinstance(v, float) else
                      (tuple(v) if isinstance(v, list) else v) for v in row) for row in res.rows]
        out[model.name] = sorted(rows, key=repr)
    return out


DAYS = [date(2024, 5, 1) + timedelta(days=i) for i in range(3)]


def test_incremental_build_equals_full_build(tmp_path: Path) -> None:
    inc, full = tmp_path / "inc", tmp_path / "full"
    _history(inc, DAYS[:2])
    first = _build(inc)
    assert first.full and first.window == (DAYS[0], DAYS[1])
    _history(inc, DAYS[2:])
    second = _build(inc)
    assert not second.full
    # the new day, plus the day before (its last intervals end in the new day)
    assert second.window == (DAYS[1], DAYS[2]) and second.days_recomputed == 2
    _history(full, DAYS)
    _build(full)
    got, want = _snapshot_of_models(inc), _snapshot_of_models(full)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name
    # the scenario really crosses midnight in an incident and has price changes
    assert got["price_changes"]
    spans = query(inc, "SELECT count(*) FROM incidents WHERE instance_id = 2 "
                            "AND CAST(ended_at AS DATE) > CAST(started_at AS DATE)")
    assert spans.rows[0][0] >= 1


def test_build_with_nothing_new_recomputes_no_day(tmp_path: Path) -> None:
    _history(tmp_path, DAYS[:1])
    _build(tmp_path)
    again = _build(tmp_path)
    assert again.window is None and again.days_recomputed == 0
    assert query(tmp_path, "SELECT count(*) FROM instance_intervals").rows[0][0] > 0


def test_rewritten_past_day_is_recomputed(tmp_path: Path) -> None:
    _history(tmp_path, DAYS)
    _build(tmp_path)
    before = query(tmp_path, "SELECT sum(total_cost) FROM cost_daily").rows[0][0]
    # a rebuild from the raw zone rewrites day 1 with a doubled GPU price for instance 1
    rows = _random_day(DAYS[0], random.Random(f"3-acct-{DAYS[0]}"))
    for r in rows:
        if r["id"] == 1:
            r["dph_base"] *= 2
    write_history(tmp_path, rows)
    res = _build(tmp_path)
    assert res.window == (DAYS[0], DAYS[2])
    after = query(tmp_path, "SELECT sum(total_cost) FROM cost_daily").rows[0][0]
    assert after > before


def test_full_flag_and_cadence_change_rebuild_everything(tmp_path: Path) -> None:
    _history(tmp_path, DAYS[:2])
    _build(tmp_path)
    assert _build(tmp_path, full=True).full
    capped = warehouse.build(tmp_path, cadence_minutes=5)  # cap 10 min: a different answer
    assert capped.full
    row = query(tmp_path, "SELECT max(hours), any_value(cap_minutes) "
                          "FROM instance_intervals, build_info").rows[0]
    assert row == (pytest.approx(10 / 60), 10)


def test_account_with_empty_snapshots_only(tmp_path: Path) -> None:
    write_log(tmp_path, {("empty", at("2024-05-01 10:00")): 0,
                         ("empty", at("2024-05-01 10:15")): 0})
    _build(tmp_path)
    assert query(tmp_path, "SELECT count(*) FROM cost_daily").rows == [(0,)]
    assert query(tmp_path, "SELECT count(*) FROM snapshots").rows == [(2,)]


def test_no_history_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match=r"No snapshots under .*collect"):
        _build(tmp_path)


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
    _build(tmp_path)
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
        res = _build(tmp_path)
        assert res.window == (date(2024, 5, 1), date(2024, 5, 2))
        # the open session still reads the old, consistent data (tables and Parquet views)
        assert ask("SELECT sum(gpu_cost) FROM cost_daily") == "[(0.5,)]"
        assert ask("SELECT count(*) FROM instance_intervals") == "[(2,)]"
        assert ask("SELECT count(*) FROM incidents") == "[(0,)]"
        # a new session sees the new data: 10:30 now has an interval, capped at 30 min
        new = query(tmp_path, "SELECT count(*), sum(gpu_cost) FROM instance_intervals")
        assert new.rows == [(5, pytest.approx(0.25 * 4 + 0.5))]
    finally:
        assert analyst.stdin
        analyst.stdin.close()
        analyst.wait(timeout=30)


def test_failed_build_leaves_the_previous_warehouse(tmp_path: Path) -> None:
    write_history(tmp_path, instance_rows("a", 1, every("2024-05-01 10:00", 3), [RUN] * 3,
                                          dph_base=1.0))
    _build(tmp_path)
    bad = tmp_path / "sql"
    shutil.copytree(SQL_DIR, bad)
    (bad / "cost_daily.sql").write_text("-- broken\nselect no_such_column from instance_daily")
    with pytest.raises(WarehouseError, match=r"Model cost_daily .*failed"):
        _build(tmp_path, sql_dir=bad)
    assert query(tmp_path, "SELECT sum(gpu_cost) FROM cost_daily").rows == [(0.5,)]
    assert not list(tmp_path.glob(".warehouse.duckdb.*"))
