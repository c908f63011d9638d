"""Every data-quality check fails (or warns) on real bad data, and passes on good data.

History checks (`pipeline.warehouse.quality`) run on Parquet landed by the real path (raw zone,
flatten, `pipeline.landing.history.land_pending`); what that path cannot produce (a repeated key,
a NULL id) is written into a partition the way a stray or damaged file would be. Mart
checks run on a warehouse built by the real `build` from such a home, or on one whose
daily model Parquet was damaged after a build. No check is patched or bypassed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.landing.history import land_pending
from pipeline.landing.raw import RawSnapshot, write_snapshot
from pipeline.storage.store import Store
from pipeline.warehouse import build as warehouse
from pipeline.warehouse.marts import MART_CHECKS, check_marts
from pipeline.warehouse.quality import HISTORY_CHECKS, CheckOutcome, run_history_checks
from pipeline.warehouse.query import query
from tests.support.sql_fixtures import RUN, every, instance_rows, write_history

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CADENCE = 15


def record(instance_id: int, **fields: object) -> dict[str, object]:
    """A plausible API record (what the simulator or Vast.ai would send)."""
    return {"id": instance_id, "actual_status": "running", "intended_status": "running",
            "gpu_name": "RTX 4090", "num_gpus": 1, "dph_base": 0.5, "dph_total": 0.52,
            "storage_cost": 0.1, "storage_total_cost": 0.02, "min_bid": 0.3,
            "search": {"gpuCostPerHour": 0.5, "diskHour": 0.02, "totalHour": 0.52},
            "instance": {"gpuCostPerHour": 0.5, "diskHour": 0.02, "totalHour": 0.52},
            **fields}


def land(store: Store, account: str, at: datetime, records: list[dict[str, object]]) -> None:
    """One snapshot through the real raw zone and landing."""
    snapshot = RawSnapshot(snapshot_id=f"{account}-{at:%Y%m%dT%H%M}", snapshot_at=at,
                           account=account, records=records, pages=1)
    write_snapshot(store, snapshot)
    land_pending(store, account, snapshot.day)


def checks(store: Store, now: datetime = NOW, day: date | None = None
           ) -> dict[str, CheckOutcome]:
    outcomes = run_history_checks(store, cadence_minutes=CADENCE, now=now, day=day)
    assert [o.name for o in outcomes] == list(HISTORY_CHECKS)
    return {o.name: o for o in outcomes}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Two accounts, two fresh snapshots each, nothing wrong."""
    store = Store(tmp_path)
    for account in ("main", "lab"):
        for minutes in (15, 0):
            land(store, account, NOW - timedelta(minutes=minutes),
                 [record(1), record(2, dph_base=1.5)])
    return store


def _day_file(store: Store) -> Path:
    [path] = (Path(store.root) / "parquet" / "instance_snapshots" / "account=main").rglob(
        "*.parquet")
    return path


def test_clean_history_passes_every_check(store: Store) -> None:
    outcomes = checks(store)
    failed = {name: o.detail for name, o in outcomes.items() if not o.passed}
    assert failed == {}
    assert outcomes["no_unexpected_schema_drift"].detail == "no unknown fields"
    assert outcomes["fresh_snapshots"].metadata == {"accounts": 2, "stale_accounts": 0}


def test_no_history_fails_every_check_with_one_sentence(tmp_path: Path) -> None:
    outcomes = checks(Store(tmp_path))
    assert not any(o.passed for o in outcomes.values())
    assert {o.detail for o in outcomes.values()} == {
        "no instance_snapshots yet: run a collection first"}


def test_a_repeated_key_fails_uniqueness(store: Store) -> None:
    # A stray second file in a partition (e.g. a copy left by a hand repair) repeats rows.
    day_file = _day_file(store)
    pq.write_table(pq.read_table(day_file).slice(0, 1), day_file.with_name("stray.parquet"))
    outcome = checks(store)["unique_instance_snapshot"]
    assert not outcome.passed and outcome.severity == "ERROR"
    assert outcome.metadata == {"duplicate_keys": 1}
    assert outcome.detail.startswith("1 (account, instance_id, snapshot_at) keys repeat")


def test_a_null_id_fails_the_id_check(store: Store) -> None:
    day_file = _day_file(store)
    table = pq.read_table(day_file)
    ids = table.column("id").to_pylist()
    ids[0] = None
    table = table.set_column(table.schema.get_field_index("id"), "id", pa.array(ids, pa.int64()))
    pq.write_table(table, day_file)
    outcome = checks(store)["instance_id_not_null"]
    assert not outcome.passed
    assert outcome.metadata == {"null_ids": 1} and outcome.detail == "1 rows without an id"


@pytest.mark.parametrize("bad", [
    {"dph_base": -0.5}, {"dph_total": -0.01}, {"storage_total_cost": -1.0}, {"min_bid": -0.2},
    {"search": {"gpuCostPerHour": 0.5, "diskHour": -0.02}},
    {"instance": {"totalHour": -3.0}},
])
def test_a_negative_price_fails_the_price_check(store: Store, bad: dict[str, object]) -> None:
    later = NOW + timedelta(minutes=CADENCE)
    land(store, "lab", later, [record(1), record(2, dph_base=1.5), record(3, **bad)])
    outcome = checks(store, now=later)["prices_non_negative"]
    assert not outcome.passed
    assert outcome.metadata == {"negative_price_rows": 1}


def test_a_new_field_warns_and_names_it(store: Store) -> None:
    land(store, "main", NOW + timedelta(minutes=15),
         [record(1, gpu_clock_mhz=1980), record(2, search={"diskHour": 0.02, "newRate": 0.1})])
    outcome = checks(store, now=NOW + timedelta(minutes=15))["no_unexpected_schema_drift"]
    assert not outcome.passed and outcome.severity == "WARN"
    assert outcome.detail == ("the API sent 2 unknown fields, kept in extra_fields: "
                              "gpu_clock_mhz, search.newRate")
    assert outcome.metadata == {"new_fields": "gpu_clock_mhz, search.newRate"}


def test_a_stale_account_fails_freshness_and_is_named(store: Store) -> None:
    land(store, "old", NOW - timedelta(minutes=2 * CADENCE + 1), [record(9)])
    outcome = checks(store)["fresh_snapshots"]
    assert not outcome.passed
    assert outcome.detail == "old: newest snapshot 2026-03-02 11:29Z is older than 30 minutes"
    assert outcome.metadata == {"accounts": 3, "stale_accounts": 1}
    # exactly two cadences old is still fresh
    assert checks(store, now=NOW - timedelta(minutes=1))["fresh_snapshots"].passed


def test_a_day_is_checked_on_its_own_rows_and_freshness_on_every_account(store: Store) -> None:
    # What a scheduled run checks: the day it landed, so the cost stays that of one day.
    yesterday = NOW - timedelta(days=1)
    land(store, "main", yesterday, [record(1), record(3, dph_base=-0.5, gpu_clock_mhz=1)])
    land(store, "old", yesterday, [record(9)])
    today = checks(store, day=NOW.date())
    assert today["prices_non_negative"].passed
    assert today["no_unexpected_schema_drift"].passed
    # the account collected only yesterday is still judged on its newest snapshot
    assert not today["fresh_snapshots"].passed
    assert today["fresh_snapshots"].detail.startswith("old: newest snapshot 2026-03-01 12:00Z")
    past = checks(store, day=yesterday.date())
    assert past["prices_non_negative"].metadata == {"negative_price_rows": 1}
    assert past["no_unexpected_schema_drift"].metadata == {"new_fields": "gpu_clock_mhz"}
    audit = checks(store)
    assert audit["prices_non_negative"].metadata == {"negative_price_rows": 1}


def test_a_day_check_never_opens_another_day(store: Store) -> None:
    # A damaged file a month back would fail any query that opened it: the day's checks
    # (a scheduled run's) do not, so their cost is one day's whatever the history's size.
    for name in ("instance_snapshots", "snapshots"):
        folder = Path(store.partition_dir(name, "main", date(2026, 2, 1)))
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"not parquet at all")
    outcomes = checks(store, day=NOW.date())
    assert {name: o.passed for name, o in outcomes.items()} == dict.fromkeys(HISTORY_CHECKS, True)


def test_a_day_that_listed_no_instance_passes_the_row_checks(store: Store) -> None:
    # An account with no instance left is not a data problem (its day file holds no row);
    # freshness still judges every account.
    later = NOW + timedelta(days=1)
    land(store, "main", later, [])
    outcomes = checks(store, now=later, day=later.date())
    assert {name: o.passed for name, o in outcomes.items()} == {
        **dict.fromkeys(HISTORY_CHECKS, True), "fresh_snapshots": False}
    assert outcomes["fresh_snapshots"].detail.startswith("lab: newest snapshot 2026-03-02")


def test_a_day_without_history_fails_every_check_with_one_sentence(store: Store) -> None:
    outcomes = checks(store, day=date(2026, 2, 1))
    assert not any(o.passed for o in outcomes.values())
    assert {o.detail for o in outcomes.values()} == {
        "no instance_snapshots on 2026-02-01: nothing was landed that day"}


# --------------------------------------------------------------------------- mart checks


def _history(home: Path, **rates: float) -> None:
    """Two instances running 10:00-11:00; the second one's rates are `rates`."""
    t = every("2026-03-02 10:00", 5, minutes=CADENCE)
    rows = instance_rows("main", 1, t, [RUN] * 5, dph_base=1.0, storage_total_cost=0.1)
    rows += instance_rows("main", 2, t, [RUN] * 5, **{"dph_base": 2.0,
                                                         "storage_total_cost": 0.2, **rates})
    write_history(home, rows)


def marts(home: Path) -> dict[str, CheckOutcome]:
    outcomes = {o.name: o for o in check_marts(home)}
    assert set(outcomes) == {check.name for check in MART_CHECKS}
    return outcomes


def _damage_model(home: Path, model: str, column: str, value: float, *,
                  times: bool = False) -> None:
    """Set (or, with `times`, multiply) one column of every Parquet file of a daily model:
    a damaged home, as a bad write or a hand edit would leave it."""
    files = sorted((home / "parquet" / "models" / model).rglob("*.parquet"))
    assert files
    for path in files:
        table = pq.read_table(path, partitioning=None)
        i = table.schema.get_field_index(column)
        old = table.column(column)
        new = (pc.multiply(old, value) if times
               else pa.array([value] * table.num_rows, old.type))
        pq.write_table(table.set_column(i, column, new), path)


def _recreate_warehouse(home: Path) -> None:
    """Delete warehouse.duckdb and build: the next build recreates every table from the
    model files, damaged ones included (no source changed, so no file is recomputed)."""
    (home / warehouse.DB_NAME).unlink()
    result = warehouse.build(home, cadence_minutes=CADENCE)
    assert result.window is None and not result.updated_in_place


def test_a_sound_warehouse_passes_every_mart_check(tmp_path: Path) -> None:
    _history(tmp_path)
    warehouse.build(tmp_path, cadence_minutes=CADENCE)
    outcomes = marts(tmp_path)
    assert all(o.passed for o in outcomes.values()), outcomes


@pytest.mark.parametrize(("rates", "failing"), [
    ({"dph_base": -2.0}, {"costs_non_negative", "interval_costs_non_negative"}),
    ({"storage_total_cost": -0.2}, {"costs_non_negative", "interval_costs_non_negative"}),
])
def test_a_negative_cost_fails_the_cost_checks(tmp_path: Path, rates: dict[str, float],
                                               failing: set[str]) -> None:
    _history(tmp_path, **rates)
    warehouse.build(tmp_path, cadence_minutes=CADENCE)
    outcomes = marts(tmp_path)
    assert {name for name, o in outcomes.items() if not o.passed} == failing
    assert outcomes["costs_non_negative"].detail == (
        "1 estimated_cost_daily rows with a negative cost")
    assert outcomes["interval_costs_non_negative"].detail.startswith("4 instance_intervals")


def test_availability_outside_0_1_fails(tmp_path: Path) -> None:
    _history(tmp_path)
    warehouse.build(tmp_path, cadence_minutes=CADENCE)
    # negative down hours in the daily fact table make up / (up + down) = 1 / 0.5
    _damage_model(tmp_path, "instance_daily", "down_hours", -0.5)
    _recreate_warehouse(tmp_path)
    assert query(tmp_path, "SELECT max(availability) FROM reliability_daily").rows == [(2.0,)]
    outcome = marts(tmp_path)["availability_in_range"]
    assert not outcome.passed
    # 2 instances in reliability_alltime_by_instance + 2 in reliability_daily
    assert outcome.detail == "4 rows with availability outside [0, 1]"


def test_cost_daily_not_summing_to_the_intervals_fails(tmp_path: Path) -> None:
    _history(tmp_path)
    warehouse.build(tmp_path, cadence_minutes=CADENCE)
    _damage_model(tmp_path, "instance_daily", "total_cost", 1.5, times=True)
    _recreate_warehouse(tmp_path)
    outcome = marts(tmp_path)["cost_daily_equals_intervals"]
    assert not outcome.passed
    # 1 h of (1.0 + 0.1) + 1 h of (2.0 + 0.2) = 3.3 in the intervals; x1.5 in estimated_cost_daily
    assert outcome.detail == ("sum(estimated_cost_daily.total_cost) = 4.950000, "
                              "sum(instance_intervals.total_cost) = 3.300000")
