"""The warehouse build: incremental equals full, and every promise the docs make about
faults (a killed build, two builds at once, an analyst reading across a build) holds on
real DuckDB files, real Parquet and real processes."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.config import load_settings
from pipeline.core.errors import WarehouseError
from pipeline.landing import history
from pipeline.storage.schema import SNAPSHOT_LOG_SCHEMA
from pipeline.storage.store import Store
from pipeline.warehouse import build as warehouse
from pipeline.warehouse.models import SQL_DIR, discover_models
from pipeline.warehouse.paths import MODELS_SUBDIR
from pipeline.warehouse.query import query
from tests.support.bill_fixtures import day_end, item, write_bill
from tests.support.sql_fixtures import RUN, at, every, instance_rows, write_history, write_log
from tests.support.warehouse import CADENCE
from tests.support.warehouse import build_at_cadence as _build
from tests.support.warehouse import build_copy as _build_copy
from tests.support.warehouse import same_sources as _same_sources
from tests.support.warehouse import snapshot_of_models as _snapshot_of_models

REPO = Path(__file__).resolve().parents[2]




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


DAYS_GAP = [date(2024, 5, 1) + timedelta(days=i) for i in range(4)]


def _unlisted_for_days(day: date) -> list[dict]:
    """Instance 1 is listed on DAYS_GAP[0] at $1.00 and again on DAYS_GAP[3] at $1.50, not in
    between; instance 2 is listed every day, so the account's snapshot log goes on."""
    t = every(f"{day.isoformat()} 10:00", 4)
    rows = instance_rows("gap", 2, t, [RUN] * 4, dph_base=0.5, dph_total=0.55)
    price = {DAYS_GAP[0]: 1.0, DAYS_GAP[3]: 1.5}.get(day)
    if price is not None:
        rows += instance_rows("gap", 1, t, [RUN] * 4, dph_base=price, dph_total=price + 0.05)
    return rows


def _three_builds(tmp_path: Path, landing: Callable[[date], list[dict]],
                  window: tuple[date, date]) -> tuple[Path, Path, Path]:
    """The same history of DAYS_GAP built three ways: incrementally (its last day added
    after a build, recomputing `window`), fully in one chunk of 31 days, and in chunks of
    2 days (days 1 .. 2, 3 .. 4); returns (incremental, full, chunked) homes."""
    inc = tmp_path / "inc"
    for d in DAYS_GAP[:3]:
        write_history(inc, landing(d))
    _build(inc)
    write_history(inc, landing(DAYS_GAP[3]))
    assert _build(inc).window == window
    full = _same_sources(inc, tmp_path / "full")
    assert _build(full).full
    chunked = _same_sources(inc, tmp_path / "chunked")
    _build(chunked, chunk_days=2)
    return inc, full, chunked


def test_price_change_after_days_unlisted_is_found_by_every_build(tmp_path: Path) -> None:
    # unlisted for two whole days, more than the context the models read before a window
    inc, full, chunked = _three_builds(tmp_path, _unlisted_for_days,
                                       (DAYS_GAP[2], DAYS_GAP[3]))
    # the full build: one change, from day 1's last snapshot to day 4's first
    changes = query(full, "SELECT instance_id, day, changed_at, previous_snapshot_at, "
                          "dph_base_before, dph_base_after, dph_total_before, dph_total_after "
                          "FROM price_changes")
    assert changes.rows == [(1, DAYS_GAP[3], at("2024-05-04 10:00"), at("2024-05-01 10:45"),
                             1.0, 1.5, 1.05, 1.55)]
    want = _snapshot_of_models(full)["price_changes"]
    assert _snapshot_of_models(chunked)["price_changes"] == want
    assert _snapshot_of_models(inc)["price_changes"] == want


def _collector_down_for_days(day: date) -> list[dict]:
    """Account "gap" collects on DAYS_GAP[0] and again on DAYS_GAP[3] only (its collector
    was down in between); account "live" collects every day, so data goes on meanwhile."""
    t = every(f"{day.isoformat()} 10:00", 4)
    rows = instance_rows("live", 2, t, [RUN] * 4, dph_base=0.5, dph_total=0.55)
    if day in (DAYS_GAP[0], DAYS_GAP[3]):
        rows += instance_rows("gap", 1, t, [RUN] * 4, dph_base=1.0, dph_total=1.05)
    return rows


def test_interval_before_days_without_collection_is_the_same_in_every_build(
        tmp_path: Path) -> None:
    """The last snapshot before an account's days-long collection gap has an interval
    (capped, up to its next snapshot days later), however a build's window or chunks fall."""
    # the window starts at the gap account's last day with data, not the live account's;
    # in the chunked build the gap's first snapshot after it is in the next chunk
    inc, full, chunked = _three_builds(tmp_path, _collector_down_for_days,
                                       (DAYS_GAP[0], DAYS_GAP[3]))
    before_gap = ("SELECT interval_start, interval_end, next_snapshot_at, is_capped "
                  "FROM instance_intervals WHERE account = 'gap' AND day = ?")
    for home in (full, chunked, inc):
        last = query(home, before_gap, params=[DAYS_GAP[0]]).rows[-1]
        assert last == (at("2024-05-01 10:45"), at("2024-05-01 11:15"),
                        at("2024-05-04 10:00"), True), home.name
    want = _snapshot_of_models(full)
    for home in (chunked, inc):
        got = _snapshot_of_models(home)
        for name in want:
            assert got[name] == want[name], (home.name, name)


DAYS_LANDED = [date(2024, 5, 1) + timedelta(days=i) for i in range(4)]


def _landings() -> list[tuple[str, list[dict]]]:
    """Day by day, a morning's snapshots then the whole day, as a collector lands them.
    Account "a" collects every day: instance 2 goes offline at 22:00 each day (an incident
    ongoing at each day's end, running past midnight) and instance 9 is offline from noon
    on day 1 to noon on day 3 (an incident older than a build's first recomputed day that
    still grows). "stale" stops after day 1 with instance 2 offline (ongoing for good).
    "gap" collects day 1, a single snapshot at midnight of day 3 and day 4: instance 5 is
    offline from 22:00 on day 1 to 06:00 on day 4, so its incident is ongoing for a whole
    build while its last interval (capped at the gap) ended a day earlier."""
    down = {"actual_status": "offline", "intended_status": "running"}
    outage = (at("2024-05-01 12:00"), at("2024-05-03 12:00"))
    steps = []
    for d in DAYS_LANDED:
        times = every(f"{d.isoformat()} 00:00", 96)
        rows = _random_day(d, random.Random(f"land-a-{d}"), "a", (1, 2, 3))
        rows += instance_rows("a", 9, times,
                              [down if outage[0] <= t < outage[1] else RUN for t in times])
        # 5 minutes late: the interval from 23:50 to 00:05 covers the next day too
        rows = [{**r, "snapshot_at": r["snapshot_at"] + timedelta(minutes=5)} for r in rows]
        if d == DAYS_LANDED[0]:
            rows += _random_day(d, random.Random(f"land-s-{d}"), "stale", (1, 2))
        gap_times = {0: times, 2: times[:1], 3: times}.get(DAYS_LANDED.index(d), [])
        gap_down = (at("2024-05-01 22:00"), at("2024-05-04 06:00"))
        rows += instance_rows("gap", 5, gap_times, [
            down if gap_down[0] <= t < gap_down[1] else RUN for t in gap_times])
        steps.append((f"{d} morning", [r for r in rows if r["snapshot_at"].hour < 12]))
        steps.append((f"{d} whole day", rows))
    return steps


def test_tables_updated_in_place_equal_a_full_build_at_every_landing(tmp_path: Path) -> None:
    """Builds after each landing update `incidents` and `reliability_daily` in a copy of
    the previous warehouse; each equals a full build of the same history."""
    home = tmp_path / "home"
    ongoing = "SELECT count(*) FROM incidents WHERE account = ? AND is_ongoing"
    for i, (step, rows) in enumerate(_landings()):
        write_history(home, rows)
        result = _build(home)
        assert result.updated_in_place == (i > 0), step
        full = _same_sources(home, tmp_path / f"full-{i}")
        assert not _build(full).updated_in_place
        got, want = _snapshot_of_models(home), _snapshot_of_models(full)
        for name in want:
            assert got[name] == want[name], (step, name)
        if step.endswith("whole day"):  # instance 2 of "a" is offline since 22:00
            assert query(home, ongoing, params=["a"]).rows[0][0] >= 1, step
    # the stale account's outage stays ongoing; instance 9's ran two days
    assert query(home, ongoing, params=["stale"]).rows[0][0] == 1
    assert query(home, "SELECT started_at, is_ongoing FROM incidents WHERE account = 'gap'"
                 ).rows == [(at("2024-05-01 22:00"), False)]
    assert query(home, "SELECT started_at, ended_at FROM incidents WHERE account = 'a' "
                       "AND instance_id = 9").rows == [(at("2024-05-01 12:05"),
                                                        at("2024-05-03 12:05"))]


DAYS_LONG = [date(2024, 6, 1) + timedelta(days=i) for i in range(8)]


def _long_day(day: date) -> list[dict]:
    """Account "a" collects every day, 5 minutes late (the interval from 23:50 to 00:05
    covers the next day too); instance 9 is offline from noon on the first day to noon on
    the seventh, an incident older than any window that keeps growing."""
    down = {"actual_status": "offline", "intended_status": "running"}
    outage = (at("2024-06-01 12:00"), at("2024-06-07 12:00"))
    times = every(f"{day.isoformat()} 00:00", 96)
    rows = _random_day(day, random.Random(f"long-{day}"), "a", (1, 2, 3))
    rows += instance_rows("a", 9, times,
                          [down if outage[0] <= t < outage[1] else RUN for t in times])
    return [{**r, "snapshot_at": r["snapshot_at"] + timedelta(minutes=5)} for r in rows]


def _in_place_equals_full(home: Path, full: Path, step: str) -> list[date]:
    """Build `home` in place and compare every model with a full build of its sources in
    `full`; returns the days the build read the history from, as its progress says."""
    said: list[str] = []
    assert _build(home, progress=said.append).updated_in_place, step
    got, want = _snapshot_of_models(home), _snapshot_of_models(_build_copy(home, full))
    for name in want:
        assert got[name] == want[name], (step, name)
    return [date.fromisoformat(m.split("reading the history from ")[1][:10])
            for m in said if "reading the history from" in m]


def test_builds_in_place_read_only_the_recent_history_and_equal_a_full_build(
        tmp_path: Path) -> None:
    """A build in place reads the history from the day before its window on (the views it
    binds list only those days' files), and from further back where a table it updates
    needs it: an ongoing incident's start, an old day's bill fetched for the first time.
    Every model equals a full build's after each landing."""
    home = tmp_path / "home"
    for d in DAYS_LONG[:5]:
        write_history(home, _long_day(d))
    _build(home)

    def same_as_full(step: str) -> list[date]:
        return _in_place_equals_full(home, tmp_path / f"full-{len(list(tmp_path.iterdir()))}",
                                     step)

    for d in DAYS_LONG[5:]:
        rows = _long_day(d)
        write_history(home, [r for r in rows if r["snapshot_at"].hour < 12])
        since = same_as_full(f"{d} morning")
        # the window is the day before and this day, less a day of context; instance 9's
        # ongoing incident reaches back to its start
        assert since[0] == d - timedelta(days=2) and since[-1] == date(2024, 5, 31), since
        write_history(home, rows)
        same_as_full(f"{d} whole day")
    assert query(home, "SELECT started_at, ended_at, is_ongoing FROM incidents "
                       "WHERE instance_id = 9").rows == [
        (at("2024-06-01 12:05"), at("2024-06-07 12:05"), False)]
    # the incident is over: the next day's build reads only the recent days
    write_history(home, _long_day(DAYS_LONG[-1] + timedelta(days=1)))
    since = same_as_full("one day more")
    assert since[0] == DAYS_LONG[-1] - timedelta(days=1) and min(since) > DAYS_LONG[1], since
    # the first day's bill, fetched only now: its estimate needs that day's snapshots
    write_bill(home, "a", DAYS_LONG[0], [item(1, "gpu", 3.0), item(9, "gpu", 5.0)],
               fetch_id="late", fetched_at=day_end(DAYS_LONG[-1]))
    same_as_full("first day's bill")
    assert query(home, "SELECT count(*) FROM cost_reconciliation WHERE day = ? "
                       "AND estimated_cost > 0", params=[DAYS_LONG[0]]).rows[0][0] >= 1


def test_a_build_in_place_reads_the_day_before_its_window_and_before_a_late_bill(
        tmp_path: Path) -> None:
    """What a build in place reads reaches one day further back than what it recomputes:
    the last interval of the day before runs past midnight into the window's first day,
    and into the day of a bill fetched late (its coverage and estimate)."""
    home = tmp_path / "home"
    days = [date(2024, 7, 1) + timedelta(days=i) for i in range(6)]

    def day_rows(day: date) -> list[dict]:  # 00:05 .. 23:50: the last interval ends at 00:05
        times = [t + timedelta(minutes=5) for t in every(f"{day.isoformat()} 00:00", 96)]
        return instance_rows("a", 1, times, [RUN] * 96, dph_base=1.0, dph_total=1.1)

    for d in days[:5]:
        write_history(home, day_rows(d))
    _build(home)

    def build_and_compare(step: str) -> list[date]:
        return _in_place_equals_full(home, tmp_path / step, step)

    write_history(home, day_rows(days[5]))
    assert build_and_compare("new-day") == [days[3]]  # window days[4] .. days[5]
    hours = "SELECT observed_hours FROM instance_daily WHERE day = ?"
    assert query(home, hours, params=[days[4]]).rows == [(24.0,)]
    write_bill(home, "a", days[1], [item(1, "gpu", 24.0)], fetch_id="late",
               fetched_at=day_end(days[5]))
    assert build_and_compare("late-bill") == [days[4], days[0]]  # newest day, less one
    assert query(home, "SELECT coverage, status FROM cost_reconciliation WHERE day = ?",
                 params=[days[1]]).rows == [(1.0, "matched")]


def _seen(day: date, instance_id: int, label: str) -> list[dict]:
    return instance_rows("acct", instance_id, every(f"{day.isoformat()} 00:00", 4), [RUN] * 4,
                         label=label, gpu_name="RTX 4090", num_gpus=1, dph_base=1.0,
                         dph_total=1.1)


def test_billed_tables_updated_in_place_equal_a_full_build(tmp_path: Path) -> None:
    """`spend_daily` and `cost_reconciliation` updated in place follow what a new day
    changes on older days: the latest label of an instance billed on a day no snapshot saw
    it, an instance billed before a snapshot first saw it, and a bill fetched again."""
    home = tmp_path / "home"
    d0, d1, d2, d3 = (date(2024, 5, 1) + timedelta(days=i) for i in range(4))
    write_history(home, _seen(d1, 1, "old") + _seen(d2, 1, "old"))
    # instance 1 billed on d0, before any snapshot; instance 7 billed on d1, not yet seen
    write_bill(home, "acct", d0, [item(1, "gpu", 2.0)], fetch_id="b0", fetched_at=day_end(d0))
    write_bill(home, "acct", d1, [item(1, "gpu", 3.0), item(7, "gpu", 4.0)], fetch_id="b1",
               fetched_at=day_end(d1))
    assert _build(home).full
    label_d0 = "SELECT label FROM spend_daily WHERE day = ? AND instance_id = 1"
    reason_d1 = ("SELECT likely_reason FROM cost_reconciliation WHERE day = ? "
                 "AND instance_id = 7")
    assert query(home, label_d0, params=[d0]).rows == [("old",)]
    assert query(home, reason_d1, params=[d1]).rows == [
        ("never seen by a snapshot (shorter than a snapshot interval)",)]

    def same_as_full(step: str) -> None:
        full = _same_sources(home, tmp_path / f"full-{step}")  # the bills too
        _build(full)
        got, want = _snapshot_of_models(home), _snapshot_of_models(full)
        for name in want:
            assert got[name] == want[name], (step, name)

    # d3: instance 1 relabelled, instance 7 seen for the first time
    write_history(home, _seen(d3, 1, "new") + _seen(d3, 7, "late"))
    assert _build(home).updated_in_place
    same_as_full("new day")
    assert query(home, label_d0, params=[d0]).rows == [("new",)]
    assert query(home, reason_d1, params=[d1]).rows != [
        ("never seen by a snapshot (shorter than a snapshot interval)",)]
    # d0's bill fetched again with another amount: no snapshot changed
    write_bill(home, "acct", d0, [item(1, "gpu", 2.5)], fetch_id="b0b",
               fetched_at=day_end(d0) + timedelta(days=3))
    result = _build(home)
    assert result.updated_in_place and result.window is None
    same_as_full("bill fetched again")
    assert query(home, "SELECT total_cost FROM spend_daily WHERE day = ?",
                 params=[d0]).rows == [(2.5,)]
    # a bill of an older day, fetched for the first time: rows on a day the tables lacked
    before = d0 - timedelta(days=1)
    write_bill(home, "acct", before, [item(1, "gpu", 1.5)], fetch_id="bm",
               fetched_at=day_end(d0) + timedelta(days=3))
    assert _build(home).updated_in_place
    same_as_full("older bill")
    assert query(home, "SELECT total_cost FROM spend_daily WHERE day = ?",
                 params=[before]).rows == [(1.5,)]


def _view_sql(home: Path, name: str) -> str:
    return query(home, "SELECT sql FROM duckdb_views() WHERE view_name = ?",
                 params=[name]).rows[0][0]


def test_history_views_union_files_by_name_only_when_their_schemas_differ(
        tmp_path: Path) -> None:
    """Files of one schema are read as they are (binding union_by_name reads every file's
    schema); a day written with another schema, as after a schema version change, makes
    the views union the files by name, with NULL where a day has no such column."""
    home = tmp_path / "home"
    _history(home, DAYS[:2])
    _build(home)
    assert "union_by_name = false" in _view_sql(home, "instance_snapshots")
    _history(home, DAYS[2:])
    day3 = home / "parquet" / "instance_snapshots" / "account=acct" / "snapshot_date=2024-05-03"
    [path] = list(day3.glob("*.parquet"))
    table = pq.read_table(path)
    pq.write_table(table.append_column("new_field", pa.array([7] * table.num_rows)), path)
    assert _build(home).window == (DAYS[1], DAYS[2])
    assert "union_by_name = true" in _view_sql(home, "instance_snapshots")
    counts = query(home, "SELECT snapshot_date, count(new_field), count(*) "
                         "FROM instance_snapshots GROUP BY 1 ORDER BY 1").rows
    assert [(d, n) for d, n, _ in counts] == [(DAYS[0], 0), (DAYS[1], 0),
                                              (DAYS[2], table.num_rows)]
    assert _snapshot_of_models(home) == _snapshot_of_models(
        _build_copy(home, tmp_path / "full"))


def test_what_an_analyst_wrote_into_the_warehouse_is_gone_after_the_next_build(
        tmp_path: Path) -> None:
    """An incremental build starts from a copy of the live warehouse only when nobody wrote
    to it since the last build: what an analyst added, changed or deleted there is gone
    after the next build, as docs/architecture.md promises; reading it changes nothing."""
    home = tmp_path / "home"
    _history(home, DAYS[:2])
    _build(home)
    con = duckdb.connect(str(home / warehouse.DB_NAME))
    con.execute("CREATE TABLE my_notes AS SELECT 1 AS x")
    con.execute("CREATE MACRO twice(x) AS 2 * x")
    con.close()
    _history(home, DAYS[2:])
    result = _build(home)
    assert not result.full and not result.updated_in_place
    assert query(home, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'my_notes'"
                 ).rows == [(0,)]
    _history(home, DAYS[2:], seed=4)  # the newest day again, other content
    query(home, "SELECT count(*) FROM spend_daily")  # a read-only session
    assert _build(home).updated_in_place  # nothing foreign left: in place again
    # rows deleted from a table the builds update in place
    con = duckdb.connect(str(home / warehouse.DB_NAME))
    con.execute("DELETE FROM spend_items WHERE day = ?", [DAYS[0]])
    con.execute("DELETE FROM incidents")
    con.close()
    _history(home, DAYS[2:], seed=5)
    assert not _build(home).updated_in_place
    assert _snapshot_of_models(home) == _snapshot_of_models(
        _build_copy(home, tmp_path / "full"))


def test_builds_in_place_one_after_another_do_not_grow_the_warehouse_file(
        tmp_path: Path) -> None:
    """Each in-place build deletes and rewrites rows in a copy of the last warehouse: the
    space they free is reused, so the file stays the size one build makes."""
    home = tmp_path / "home"
    _history(home, DAYS)
    _build(home)
    sizes = []
    for i in range(6):
        _history(home, DAYS[2:], seed=10 + i)  # the newest day landed again
        assert _build(home).updated_in_place
        sizes.append((home / warehouse.DB_NAME).stat().st_size)
    assert max(sizes) <= sizes[0] * 1.1, sizes


def test_a_rewritten_past_day_rebuilds_the_tables(tmp_path: Path) -> None:
    """A day before the newest one rewritten (a re-landing) can change what older table
    rows were built from: no table is updated in place then."""
    home = tmp_path / "home"
    _history(home, DAYS)
    _build(home)
    _reland(home, "acct", DAYS[0])
    result = _build(home)
    assert not result.full and not result.updated_in_place
    full = _same_sources(home, tmp_path / "full")
    _build(full)
    assert _snapshot_of_models(home) == _snapshot_of_models(full)


def test_build_with_nothing_new_recomputes_no_day(tmp_path: Path) -> None:
    _history(tmp_path, DAYS[:1])
    _build(tmp_path)
    again = _build(tmp_path)
    assert again.window is None and again.days_recomputed == 0
    assert query(tmp_path, "SELECT count(*) FROM instance_intervals").rows[0][0] > 0


def test_rewritten_past_day_is_recomputed(tmp_path: Path) -> None:
    _history(tmp_path, DAYS)
    _build(tmp_path)
    before = query(tmp_path, "SELECT sum(total_cost) FROM estimated_cost_daily").rows[0][0]
    # a rebuild from the raw zone rewrites day 1 with a doubled GPU price for instance 1
    rows = _random_day(DAYS[0], random.Random(f"3-acct-{DAYS[0]}"))
    for r in rows:
        if r["id"] == 1:
            r["dph_base"] *= 2
    write_history(tmp_path, rows)
    res = _build(tmp_path)
    assert res.window == (DAYS[0], DAYS[2])
    after = query(tmp_path, "SELECT sum(total_cost) FROM estimated_cost_daily").rows[0][0]
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
    assert query(tmp_path, "SELECT count(*) FROM estimated_cost_daily").rows == [(0,)]
    assert query(tmp_path, "SELECT count(*) FROM snapshots").rows == [(2,)]


def test_no_history_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match=r"No snapshots or bills under .*collect.*charges"):
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
        assert ask("SELECT sum(gpu_cost) FROM estimated_cost_daily") == "[(0.5,)]"
        # a new day of snapshots arrives and the warehouse is rebuilt while it is open
        t2 = every("2024-05-02 10:00", 3)
        write_history(tmp_path, instance_rows("a", 1, t2, [RUN] * 3, dph_base=1.0))
        res = _build(tmp_path)
        assert res.window == (date(2024, 5, 1), date(2024, 5, 2))
        # the open session still reads the old, consistent data (tables and Parquet views)
        assert ask("SELECT sum(gpu_cost) FROM estimated_cost_daily") == "[(0.5,)]"
        assert ask("SELECT count(*) FROM instance_intervals") == "[(2,)]"
        assert ask("SELECT count(*) FROM incidents") == "[(0,)]"
        # really across a rewrite: the build replaced the day-1 files the analyst's view
        # lists, and keeps them (superseded) for sessions like this one
        state = json.loads((tmp_path / warehouse.STATE_NAME).read_text())
        old_files = [r for r in state["superseded"] if r.startswith("instance_intervals/")]
        assert old_files
        assert all((tmp_path / MODELS_SUBDIR / r).is_file() for r in old_files)
        assert not set(old_files) & set(state["manifest"]["instance_intervals"]["a|2024-05-01"])
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
    models = tmp_path / "parquet" / "models"
    published = sorted(p.relative_to(models) for p in models.rglob("*.parquet"))
    bad = tmp_path / "sql"
    shutil.copytree(SQL_DIR, bad)
    (bad / "estimated_cost_daily.sql").write_text(
        "-- broken\nselect no_such_column from instance_daily")
    with pytest.raises(WarehouseError, match=r"Model estimated_cost_daily .*failed"):
        _build(tmp_path, sql_dir=bad)  # a full build (the SQL changed): daily models first
    assert query(tmp_path, "SELECT sum(gpu_cost) FROM estimated_cost_daily").rows == [(0.5,)]
    assert not list(tmp_path.glob(".warehouse.duckdb.*"))
    # what the failed build had published is gone: engines globbing the folder see one copy
    assert sorted(p.relative_to(models) for p in models.rglob("*.parquet")) == published


# --------------------------------------------------------------------------- cadence


def test_demo_then_cli_build_with_the_same_settings_is_incremental(tmp_path: Path) -> None:
    """The demo, the CLI and Dagster all build with the configured cadence (`build_for`),
    so one never forces the other into a full rebuild; the demo's snapshots follow it too."""
    from tests.support.cli import run_cli

    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "vast-pipeline.toml"
    config.write_text("cadence_minutes = 30\n")
    env = {"VAST_PIPELINE_CONFIG": str(config)}
    demo = run_cli("demo", "--days", "1", "--size", "20", home=home, env=env)
    assert demo.returncode == 0, demo.stderr
    assert "the last 1 x 24 h of 30-minute snapshots" in demo.stdout
    result = run_cli("build", home=home, env=env)
    assert result.returncode == 0, result.stderr
    assert "incremental build" in result.stdout and "0 days recomputed" in result.stdout
    assert query(home, "SELECT cadence_minutes, cap_minutes FROM build_info").rows == [(30, 60)]
    gaps = query(home, "SELECT DISTINCT snapshot_at - lag(snapshot_at) OVER (ORDER BY "
                       "snapshot_at) AS gap FROM snapshots QUALIFY gap IS NOT NULL").rows
    assert gaps == [(timedelta(minutes=30),)]
    # the old hard-coded default (15) is another cadence: a full rebuild
    assert _build(home).full


def test_build_for_uses_the_configured_cadence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _history(home, DAYS[:1])
    config = tmp_path / "vast-pipeline.toml"
    config.write_text("cadence_minutes = 20\n")
    settings = load_settings({"VAST_PIPELINE_HOME": str(home),
                              "VAST_PIPELINE_CONFIG": str(config)})
    assert warehouse.build_for(settings).full
    assert not warehouse.build_for(settings).full
    assert query(home, "SELECT cadence_minutes FROM build_info").rows == [(20,)]


def test_daily_model_files_hold_the_types_duckdb_itself_writes(tmp_path: Path) -> None:
    """Model Parquet is written by pyarrow from DuckDB's Arrow result. Each column keeps the
    Parquet type DuckDB's own COPY of the same query gives (a sum() of integers is a HUGEINT,
    which Arrow calls decimal128(38, 0) but DuckDB stores as DOUBLE), so analysts and other
    engines see the types they saw before."""
    import duckdb
    import pyarrow.parquet as pq

    home = tmp_path / "home"
    _fleet(home, FAULT_DAYS[:2], accounts=("a", "b"))
    _build(home)
    con = duckdb.connect(str(home / warehouse.DB_NAME), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    for name, value in (("build_from", FAULT_DAYS[0]), ("build_to", FAULT_DAYS[1])):
        con.execute(f"SET VARIABLE {name} = ?::DATE", [value])
    con.execute("SET VARIABLE cap_minutes = ?::INTEGER", [2 * CADENCE])
    con.execute("SET VARIABLE context_days = 1")
    daily = [m for m in discover_models() if m.materialized == "daily"]
    assert {m.name for m in daily} >= {"instance_intervals", "instance_daily"}
    for model in daily:
        ours = sorted((home / MODELS_SUBDIR / model.name).glob("*/*/*.parquet"))[0]
        theirs = tmp_path / f"{model.name}.parquet"
        con.execute(f"COPY (SELECT * EXCLUDE (account, day) FROM ({model.sql})) "
                    f"TO '{theirs}' (FORMAT parquet)")
        expected = [(f.name, str(f.type)) for f in pq.read_schema(theirs)]
        assert [(f.name, str(f.type)) for f in pq.read_schema(ours)] == expected, model.name
    con.close()


# --------------------------------------------------------------------------- faults


FAULT_DAYS = [date(2024, 5, 1) + timedelta(days=i) for i in range(6)]
INSTANCES = (1, 2, 3, 4, 5, 6)
BUILDER = """
import os, signal, sys
from pipeline.warehouse.build import build

def progress(msg):
    print(msg, flush=True)
    if len(sys.argv) > 4 and sys.argv[4] in msg:  # kill -9 itself right at this step
        os.kill(os.getpid(), signal.SIGKILL)

result = build(sys.argv[1], cadence_minutes=int(sys.argv[2]), chunk_days=int(sys.argv[3]),
               progress=progress)
print("DONE", result.days_recomputed, flush=True)
"""


def _fleet(home: Path, days: list[date], accounts: tuple[str, ...] = ("a", "b", "c")) -> None:
    for account in accounts:
        _history(home, days, account=account, instances=INSTANCES)


def _reland(home: Path, account: str, day: date) -> None:
    """The day's raw re-landed with other content: instance 1's GPU price doubled."""
    rows = _random_day(day, random.Random(f"3-{account}-{day}"), account, INSTANCES)
    for row in rows:
        if row["id"] == 1:
            row["dph_base"] *= 2
    write_history(home, rows)


def _spawn_build(home: Path, chunk_days: int = 1, die_at: str = "") -> subprocess.Popen[str]:
    """A build in its own process; `die_at`: it kills itself (-9) at that progress step."""
    return subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(home), str(CADENCE), str(chunk_days),
         *([die_at] if die_at else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def _assert_no_leftovers(home: Path) -> None:
    """Only the files the state knows: no half-written database, state, staging or orphans."""
    state = json.loads((home / warehouse.STATE_NAME).read_text())
    known = {rel for parts in state["manifest"].values() for rels in parts.values()
             for rel in rels} | set(state["superseded"])
    models = home / MODELS_SUBDIR
    on_disk = {str(f.relative_to(models)) for f in models.glob("*/account=*/day=*/*.parquet")}
    assert on_disk == known
    assert not list(models.glob("_staging-*"))
    assert not list(models.glob("_building/*"))  # no build is marked as running
    # the file the last build replaced may wait for the next build to delete it
    assert not [p.name for p in home.iterdir() if p.name.startswith(".warehouse")
                and p.name != ".warehouse.lock" and not p.name.endswith(".retired")]
    assert len(list(home.glob(".warehouse.duckdb.*.retired"))) <= 1


def test_a_build_finds_the_files_a_dead_build_published(tmp_path: Path) -> None:
    """A build that died after publishing model files leaves its marker, and the next
    build walks the model folders for such orphans; so does the first build on a state
    written before builds left markers."""
    home = tmp_path / "home"
    _history(home, DAYS)
    _build(home)
    models = home / MODELS_SUBDIR
    for legacy in (False, True):
        orphan = models / "instance_intervals" / "account=acct" / "day=2024-05-01" / "x.parquet"
        shutil.copy(next(orphan.parent.glob("*.parquet")), orphan)
        if legacy:
            state = json.loads((home / warehouse.STATE_NAME).read_text())
            del state["builds_leave_markers"]
            (home / warehouse.STATE_NAME).write_text(json.dumps(state))
        else:
            (models / "_building" / "build-dead").write_bytes(b"")
        _build(home)
        assert not orphan.exists(), legacy
        _assert_no_leftovers(home)


def _interrupted_home(tmp_path: Path) -> tuple[Path, dict, dict]:
    """A built home that then got new days and a re-landed past day; returns it, what its
    (old) warehouse answers now and what a full build of its data answers."""
    home = tmp_path / "home"
    _fleet(home, FAULT_DAYS[:4])
    _build(home, chunk_days=1)
    _fleet(home, FAULT_DAYS[4:])        # new days
    _reland(home, "b", FAULT_DAYS[1])   # and a past day rewritten
    # what the old warehouse answers now (its staging views read the history as it is)
    before = _snapshot_of_models(home)
    expected_home = _same_sources(home, tmp_path / "expected")
    _build(expected_home)
    expected = _snapshot_of_models(expected_home)
    assert expected != before
    return home, before, expected


def test_killed_builds_leave_the_old_warehouse_and_the_next_build_heals(
        tmp_path: Path) -> None:
    home, before, expected = _interrupted_home(tmp_path)
    rng = random.Random(2026)
    killed = 0
    for point in sorted(rng.sample(range(1, 41), 3)):  # after this many progress lines
        proc = _spawn_build(home)
        assert proc.stdout
        for _ in range(point):
            if not proc.stdout.readline():
                break
        time.sleep(rng.uniform(0.0, 0.05))
        proc.kill()
        proc.wait(timeout=30)
        killed += proc.returncode == -9
        # the live warehouse is whole: the old one, or the new one once it was swapped in
        assert _snapshot_of_models(home) in (before, expected)
    assert killed >= 2  # the kills really interrupted builds
    healed = _build(home, chunk_days=1)
    assert _snapshot_of_models(home) == expected
    assert healed.window is None or healed.window[1] == FAULT_DAYS[-1]
    _assert_no_leftovers(home)


def test_builds_killed_at_precise_steps(tmp_path: Path) -> None:
    """The narrowest windows too, in build order: mid daily model, mid tables, and between
    the new state and the swap (the state already lists the new files, the old database
    is live); each kill leaves the old warehouse, the next build heals."""
    home, before, expected = _interrupted_home(tmp_path)
    for step in ("instance_intervals: 2024-05-03", "incidents (table)",
                 "state written, swapping in"):
        proc = _spawn_build(home, die_at=step)
        out, _err = proc.communicate(timeout=120)
        assert proc.returncode == -9, out
        assert out.splitlines()[-1].split("] ", 1)[1].startswith(step)
        assert _snapshot_of_models(home) == before
        assert list(home.glob(f".{warehouse.DB_NAME}.*.building"))  # it died mid-build
    _build(home, chunk_days=1)
    assert _snapshot_of_models(home) == expected
    _assert_no_leftovers(home)


def test_builds_killed_while_updating_in_place_leave_the_old_warehouse(
        tmp_path: Path) -> None:
    """An in-place build works on a copy: killed while it swaps a warehouse table's days,
    after updating a table, or between its state and the swap, it leaves the old
    warehouse live, and the next build heals (equal to a full build, no leftovers)."""
    home = tmp_path / "home"
    _fleet(home, FAULT_DAYS[:4])
    _build(home, chunk_days=1)
    _fleet(home, FAULT_DAYS[4:])  # new days only: the next build updates in place
    before = _snapshot_of_models(home)
    expected = _snapshot_of_models(_build_copy(home, tmp_path / "expected"))
    assert expected != before
    for step in ("instance_daily: 2024-05-05", "incidents (table, updated",
                 "spend_items (table, updated", "state written, swapping in"):
        proc = _spawn_build(home, die_at=step)
        out, _err = proc.communicate(timeout=120)
        assert proc.returncode == -9, out
        assert _snapshot_of_models(home) == before, step
    _build(home, chunk_days=1)
    assert _snapshot_of_models(home) == expected
    _assert_no_leftovers(home)


def test_two_builds_at_once_wait_on_the_lock_and_both_succeed(tmp_path: Path) -> None:
    from filelock import FileLock

    home = tmp_path / "home"
    _fleet(home, FAULT_DAYS[:3])
    _build(home)
    _fleet(home, FAULT_DAYS[3:])
    state_before = (home / warehouse.STATE_NAME).read_bytes()
    with FileLock(str(home / ".warehouse.lock")):  # both start while a build holds the lock
        procs = [_spawn_build(home, chunk_days=2) for _ in range(2)]
        time.sleep(1.0)
        assert [p.poll() for p in procs] == [None, None]  # waiting, not failing
        assert (home / warehouse.STATE_NAME).read_bytes() == state_before
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _out, err in outs]
    done = sorted(int(line.split()[1]) for out, _err in outs for line in out.splitlines()
                  if line.startswith("DONE"))
    # one built days 2..5 (the day before the first new one on), the other found it done
    assert done == [0, 4]
    expected_home = _same_sources(home, tmp_path / "expected")
    _build(expected_home)
    assert _snapshot_of_models(home) == _snapshot_of_models(expected_home)
    _assert_no_leftovers(home)


def test_a_build_waiting_too_long_for_the_lock_is_one_sentence(tmp_path: Path) -> None:
    from filelock import FileLock

    _history(tmp_path, DAYS[:1])
    with FileLock(str(tmp_path / ".warehouse.lock")), \
            pytest.raises(WarehouseError, match=r"^Another build of .* is still running") as err:
        _build(tmp_path, lock_timeout=0.2)
    assert "\n" not in str(err.value)
    assert not (tmp_path / warehouse.DB_NAME).exists()


def test_incremental_equals_full_across_accounts_rewrites_and_chunks(tmp_path: Path) -> None:
    inc = tmp_path / "inc"
    _fleet(inc, FAULT_DAYS[:4], accounts=("a", "b"))
    first = _build(inc, chunk_days=2)
    assert first.full
    cost = "SELECT sum(total_cost) FROM estimated_cost_daily WHERE account = 'a' AND day = ?"
    old_cost = query(inc, cost, params=[FAULT_DAYS[2]]).rows[0][0]
    _fleet(inc, FAULT_DAYS[4:], accounts=("a", "b"))  # new days of known accounts
    _fleet(inc, FAULT_DAYS[3:], accounts=("c",))      # a new account
    _reland(inc, "a", FAULT_DAYS[2])                  # a past day re-landed, other content
    second = _build(inc, chunk_days=2)
    # from the day before the rewritten one: 5 days, three chunks of at most 2
    assert not second.full and second.window == (FAULT_DAYS[1], FAULT_DAYS[5])
    assert second.days_recomputed == 5
    assert query(inc, cost, params=[FAULT_DAYS[2]]).rows[0][0] > old_cost
    full = _same_sources(inc, tmp_path / "full")
    assert _build(full).full  # one chunk of 31 days
    got, want = _snapshot_of_models(inc), _snapshot_of_models(full)
    for name in want:
        assert got[name] == want[name], name
    assert {r[0] for r in query(inc, "SELECT DISTINCT account FROM estimated_cost_daily").rows} == {
        "a", "b", "c"}


def test_a_models_duckdb_setting_holds_while_it_runs_and_is_reset_after(tmp_path: Path) -> None:
    """`-- duckdb:` settings apply to their own model only: the next model sees the default."""
    home = tmp_path / "home"
    write_history(home, instance_rows("acct", 1, every("2024-05-01 00:00", 3), [RUN] * 3))
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir, ignore=shutil.ignore_patterns("__*"))
    (sql_dir / "zz_setting_seen.sql").write_text(
        "-- zz_setting_seen: the optimizers disabled while this model ran. Grain: one row.\n"
        "-- materialized: table\n-- duckdb: disabled_optimizers = 'join_order,top_n'\n"
        "select current_setting('disabled_optimizers') as seen")
    (sql_dir / "zz_setting_after.sql").write_text(
        "-- zz_setting_after: the same, in the model built next. Grain: one row.\n"
        "-- materialized: table\nselect seen, current_setting('disabled_optimizers') as after "
        "from zz_setting_seen")
    _build(home, sql_dir=sql_dir)
    [(seen, after)] = query(home, "SELECT seen, after FROM zz_setting_after").rows
    assert set(seen.split(",")) == {"join_order", "top_n"}
    assert after == ""


def test_instance_rows_missing_from_the_snapshot_log_get_no_interval(tmp_path: Path) -> None:
    """The snapshot log is the commit record: rows of a snapshot it does not list (left by a
    writer killed between the two files) are not part of the timeline."""
    home = tmp_path / "home"
    logged = every("2024-05-01 00:00", 4)  # 00:00 .. 00:45
    orphan = at("2024-05-01 00:20")
    write_history(home, instance_rows("acct", 1, [*logged, orphan], [RUN] * 5, dph_base=1.0))
    log = home / "parquet" / "snapshots" / "account=acct" / "snapshot_date=2024-05-01"
    shutil.rmtree(log)
    write_log(home, {("acct", t): 1 for t in logged})
    _build(home)
    got = query(home, "SELECT interval_start, interval_end FROM instance_intervals "
                      "ORDER BY 1").rows
    assert got == [(logged[0], logged[1]), (logged[1], logged[2]), (logged[2], logged[3])]


def test_fleet_now_and_incidents_find_each_accounts_newest_snapshot_however_old(
        tmp_path: Path) -> None:
    """The build reads only the log days from the oldest of the accounts' newest snapshots:
    an account that stopped collecting days ago, and one whose newest log file holds no
    snapshot, still have their newest snapshot found."""
    home = tmp_path / "home"
    down = {"actual_status": "offline", "intended_status": "running"}
    write_history(home, instance_rows("stale", 7, every("2024-05-01 00:00", 4),
                                      [RUN, RUN, down, down]))
    write_history(home, instance_rows("live", 8, every("2024-05-03 00:00", 4), [RUN] * 4))
    empty_log = home / "parquet" / "snapshots" / "account=live" / "snapshot_date=2024-05-04"
    empty_log.mkdir(parents=True)
    pq.write_table(SNAPSHOT_LOG_SCHEMA.empty_table(), empty_log / "part-0.parquet")
    _build(home)
    fleet = query(home, "SELECT account, instance_id, snapshot_at FROM fleet_now "
                        "ORDER BY 1").rows
    assert fleet == [("live", 8, at("2024-05-03 00:45")), ("stale", 7, at("2024-05-01 00:45"))]
    assert history.newest_snapshots(Store(home))["live"][0] == at("2024-05-03 00:45")
    # the stale account's outage runs up to its newest snapshot, still down there: ongoing
    assert query(home, "SELECT account, instance_id, started_at, is_ongoing "
                       "FROM incidents").rows == [("stale", 7, at("2024-05-01 00:30"), True)]
