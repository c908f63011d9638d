"""The Parquet history: layout, idempotence, rebuild, healing, concurrency."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.landing.history import DayResult, day_path, land_pending, rebuild, rebuild_day
from pipeline.landing.raw import RawSnapshot, read_snapshot, write_snapshot
from pipeline.sim.fleet import FleetModel
from pipeline.storage.store import Store

T0 = datetime(2026, 2, 10, 23, 0, tzinfo=UTC)  # a day boundary inside the first hours
ACCOUNT = "acct"


@pytest.fixture(scope="module")
def fleet() -> FleetModel:
    return FleetModel(seed=5, size=40, drift_rate=0.05, new_field_rate=0.05, broken_rate=0.02)


def collect(store: Store, fleet: FleetModel, i: int, records: list | None = None) -> str:
    at = T0 + timedelta(minutes=15 * i)
    return write_snapshot(store, RawSnapshot(
        snapshot_id=f"snap{i:03d}", snapshot_at=at, account=ACCOUNT,
        records=fleet.records_at(at) if records is None else records, pages=2))


def land(store: Store, path: str) -> DayResult:
    """Land what the day of the raw snapshot at `path` lacks (as collection does)."""
    snapshot = read_snapshot(store, path)
    return land_pending(store, snapshot.account, snapshot.day)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "parquet").rglob("*")) if p.is_file()}


def query(root: Path, dataset: str, sql: str) -> list[tuple]:
    rel = (f"read_parquet('{root}/parquet/{dataset}/*/*/*.parquet', hive_partitioning = true, "
           "hive_types = {'account': VARCHAR, 'snapshot_date': DATE})")
    with duckdb.connect() as con:
        return con.execute(sql.replace("{rel}", rel)).fetchall()


def expected_rows(store: Store, fleet: FleetModel, n: int) -> dict[str, int]:
    """snapshot_id -> usable records served (objects with an integer id)."""
    out = {}
    for i in range(n):
        recs = fleet.records_at(T0 + timedelta(minutes=15 * i))
        out[f"snap{i:03d}"] = sum(1 for r in recs if isinstance(r, dict)
                                  and type(r.get("id")) is int)
    return out


def test_land_layout_counts_and_duckdb(tmp_path: Path, fleet: FleetModel) -> None:
    store = Store(tmp_path)
    for i in range(6):
        result = land(store, collect(store, fleet, i))
        assert result.snapshot_ids == [f"snap{i:03d}"]
    want = expected_rows(store, fleet, 6)
    got = dict(query(tmp_path, "instance_snapshots",
                     "select snapshot_id, count(*) from {rel} group by 1"))
    assert got == want
    days = query(tmp_path, "snapshots", "select snapshot_date, count(*) from {rel} group by 1 "
                                        "order by 1")
    assert days == [(date(2026, 2, 10), 4), (date(2026, 2, 11), 2)]  # 23:00..23:45, then 00:xx
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet"))
    assert len(files) == 6  # one file per dataset per day, not one per snapshot
    log = query(tmp_path, "snapshots", "select snapshot_id, instances, quarantined_records, "
                                       "pages, schema_version from {rel} order by snapshot_at")
    assert [(r[0], r[1]) for r in log] == sorted(want.items())
    assert all(r[3] == 2 and r[4] == 1 for r in log)
    served = sum(len(fleet.records_at(T0 + timedelta(minutes=15 * i))) for i in range(6))
    assert sum(r[1] + r[2] for r in log) == served
    quarantined = query(tmp_path, "quarantine", "select count(*) from {rel} where field is null")
    assert quarantined == [(sum(r[2] for r in log),)]
    table = pq.read_table(day_path(store, "instance_snapshots", ACCOUNT, date(2026, 2, 10)))
    keys = list(zip(table.column("id").to_pylist(), table.column("snapshot_at").to_pylist(),
                    strict=True))
    assert keys == sorted(keys)  # sorted by (id, snapshot_at): repeated values compress


def test_landing_again_changes_nothing_and_rebuild_is_byte_identical(
    tmp_path: Path, fleet: FleetModel
) -> None:
    store = Store(tmp_path)
    paths = [collect(store, fleet, i) for i in range(5)]
    for p in paths:
        land(store, p)
    landed = digest(tmp_path)
    assert land(store, paths[2]).snapshot_ids == []  # already in the log: not flattened
    assert land(store, paths[0]).snapshot_ids == []
    assert digest(tmp_path) == landed
    first = rebuild(store)
    assert digest(tmp_path) == landed  # landing one by one == deriving from raw at once
    assert first.snapshots == 5 and first.errors == [] and first.orphan_days == []
    rebuild(store)
    assert digest(tmp_path) == landed


def test_zero_instance_snapshot_is_in_the_log(tmp_path: Path, fleet: FleetModel) -> None:
    store = Store(tmp_path)
    land(store, collect(store, fleet, 0))
    result = land(store, collect(store, fleet, 1, records=[]))
    assert result.rows == 0
    log = query(tmp_path, "snapshots", "select snapshot_id, instances from {rel} order by 1")
    assert log[1] == ("snap001", 0)
    rows = query(tmp_path, "instance_snapshots",
                 "select count(*) from {rel} where snapshot_id = 'snap001'")
    assert rows == [(0,)]


def test_next_landing_heals_raw_snapshots_missing_from_parquet(
    tmp_path: Path, fleet: FleetModel
) -> None:
    store = Store(tmp_path)
    land(store, collect(store, fleet, 0))
    collect(store, fleet, 1)  # raw written, landing "crashed"
    result = land(store, collect(store, fleet, 2))
    assert result.snapshot_ids == ["snap001", "snap002"] and not result.rebuilt
    got = dict(query(tmp_path, "instance_snapshots",
                     "select snapshot_id, count(*) from {rel} group by 1"))
    assert got == expected_rows(store, fleet, 3)


def test_stale_or_corrupt_day_file_is_rederived(tmp_path: Path, fleet: FleetModel) -> None:
    store = Store(tmp_path)
    for i in range(3):
        land(store, collect(store, fleet, i))
    good = digest(tmp_path)
    day = date(2026, 2, 10)
    old = pq.read_table(day_path(store, "snapshots", ACCOUNT, day))
    pq.write_table(old.replace_schema_metadata({"vast_pipeline.schema_version": "0"}),
                   day_path(store, "snapshots", ACCOUNT, day))
    Path(day_path(store, "instance_snapshots", ACCOUNT, day)).write_bytes(b"garbage")
    result = land(store, collect(store, fleet, 2))
    assert result.rebuilt and result.snapshot_ids == ["snap000", "snap001", "snap002"]
    assert digest(tmp_path) == good


def test_rebuild_reports_orphans_and_unreadable_raw(tmp_path: Path, fleet: FleetModel) -> None:
    store = Store(tmp_path)
    paths = [collect(store, fleet, i) for i in range(6)]
    for p in paths:
        land(store, p)
    before = digest(tmp_path)
    Path(paths[5]).write_bytes(b"not zstd")  # 2026-02-11 00:15
    for p in paths[:4]:  # the whole first day's raw is gone (e.g. retention)
        Path(p).unlink()
    result = rebuild(store)
    assert result.orphan_days == [(ACCOUNT, date(2026, 2, 10))]
    assert len(result.errors) == 1 and Path(paths[5]).name in result.errors[0]
    assert "Left alone 1 days" in result.summary()
    after = digest(tmp_path)
    first_day = [k for k in before if "2026-02-10" in k]
    assert all(after[k] == before[k] for k in first_day)  # left alone
    assert query(tmp_path, "snapshots", "select count(*) from {rel} "
                                        "where snapshot_date = DATE '2026-02-11'") == [(1,)]
    assert rebuild_day(store, ACCOUNT, date(2030, 1, 1)).snapshots == 0


def test_two_landers_and_a_rebuilder_on_the_same_day_lose_nothing(tmp_path: Path) -> None:
    """The two entry points at once: the day's lock serializes them, nothing is lost."""
    script = textwrap.dedent(f"""
        import sys, time
        from datetime import datetime, timedelta, UTC
        from pathlib import Path
        from pipeline.sim.fleet import FleetModel
        from pipeline.landing.history import land_pending, rebuild_day
        from pipeline.landing.raw import RawSnapshot, write_snapshot
        from pipeline.storage.store import Store
        worker = int(sys.argv[1])
        store = Store({str(tmp_path)!r})
        t0 = datetime(2026, 2, 11, 1, tzinfo=UTC)
        records = FleetModel(seed=9, size=150).records_at(t0)
        go = Path({str(tmp_path / "go")!r})
        while not go.exists():
            time.sleep(0.01)
        for i in range(5):
            if worker == 0:
                rebuild_day(store, "acct", t0.date())
                continue
            at = t0 + timedelta(minutes=10 * i + worker)
            snap = RawSnapshot(snapshot_id=f"w{{worker}}-{{i}}", snapshot_at=at,
                               account="acct", records=records)
            write_snapshot(store, snap)
            land_pending(store, "acct", snap.day)
    """)
    store = Store(tmp_path)
    t0 = datetime(2026, 2, 11, 1, tzinfo=UTC)
    write_snapshot(store, RawSnapshot(snapshot_id="w0-0", snapshot_at=t0, account="acct",
                                      records=FleetModel(seed=9, size=150).records_at(t0)))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(w)], cwd=Path.cwd())
             for w in (0, 1, 2)]
    (tmp_path / "go").touch()
    assert [p.wait(timeout=240) for p in procs] == [0, 0, 0]
    assert land_pending(store, "acct", t0.date()).snapshots == 0  # nothing left behind
    n = len(FleetModel(seed=9, size=150).records_at(t0))
    log = query(tmp_path, "snapshots", "select snapshot_id, instances from {rel} order by 1")
    assert log == [("w0-0", n)] + [(f"w{w}-{i}", n) for w in (1, 2) for i in range(5)]
    rows = query(tmp_path, "instance_snapshots", "select count(*), count(distinct "
                                                 "(id, snapshot_at)) from {rel}")
    assert rows == [(11 * n, 11 * n)]


def test_parquet_types_follow_the_contract(tmp_path: Path, fleet: FleetModel) -> None:
    store = Store(tmp_path)
    land(store, collect(store, fleet, 0))
    types = dict(query(tmp_path, "instance_snapshots",
                       "select column_name, column_type from (describe select * from {rel})"))
    assert types["snapshot_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["search__disk_hour"] == "DOUBLE" and types["id"] == "BIGINT"
    assert types["ports"] == "BIGINT[]" and types["account"] == "VARCHAR"
    assert types["snapshot_date"] == "DATE"
    meta = pq.read_metadata(day_path(store, "instance_snapshots", ACCOUNT, date(2026, 2, 10)))
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert pa.types.is_timestamp(pq.read_schema(
        day_path(store, "instance_snapshots", ACCOUNT, date(2026, 2, 10))).field("start_date").type)


def test_parallel_rebuild_writes_the_same_files(tmp_path: Path, fleet: FleetModel) -> None:
    store = Store(tmp_path)
    for i in range(0, 4 * 96 * 15, 12 * 60):  # every 12 hours over 4 days: 3+ day partitions
        collect(store, fleet, i // 15)
    sequential = rebuild(store, workers=1)
    files = digest(tmp_path)
    assert len(sequential.days) >= 3 and sequential.snapshots == 8
    seen: list[int] = []
    parallel = rebuild(store, workers=2, progress=seen.append)
    assert digest(tmp_path) == files
    assert sum(seen) == 8 and parallel.rows == sequential.rows


def test_land_pending_flattens_only_what_the_day_lacks(tmp_path) -> None:
    """The scheduled path: raw snapshots written since the last landing, and nothing else."""
    from datetime import UTC, datetime, timedelta

    import duckdb

    from pipeline.landing.history import land_pending
    from pipeline.landing.raw import RawSnapshot, write_snapshot
    from pipeline.sim.fleet import FleetModel
    from pipeline.storage.store import Store

    store = Store(tmp_path)
    fleet = FleetModel(seed=4, size=20)
    start = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)

    def write(i: int) -> None:
        at = start + timedelta(minutes=15 * i)
        write_snapshot(store, RawSnapshot(snapshot_id=f"s{i}", snapshot_at=at, account="a",
                                          records=fleet.records_at(at)))

    for i in range(3):
        write(i)
    first = land_pending(store, "a", start.date())
    assert first.snapshots == 3
    assert land_pending(store, "a", start.date()).snapshots == 0  # nothing new: no work
    write(3)
    fourth = land_pending(store, "a", start.date())
    assert fourth.snapshots == 1
    expected = sum(len(fleet.records_at(start + timedelta(minutes=15 * i))) for i in range(4))
    glob = store.parquet_glob("instance_snapshots")
    rows = duckdb.execute(f"select count(*), count(distinct (snapshot_id, id)) "
                          f"from read_parquet('{glob}')").fetchone()
    assert rows == (expected, expected)


def test_a_day_rebuilt_through_the_fast_path_is_byte_identical(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebuilds take the columnar fast path for big batches and the value-by-value path
    for small ones: on the same drifted raw day both write the very same files."""
    import pipeline.landing.history as history

    store = Store(tmp_path)
    drifted = FleetModel(seed=3, size=150, drift_rate=0.05, new_field_rate=0.05,
                         broken_rate=0.02)
    paths = [collect(store, drifted, i) for i in range(4, 12)]
    Path(paths[3]).write_bytes(b"not zstd")
    digests, errors = [], []
    for threshold in (0, 1 << 60):  # every batch fast / none
        monkeypatch.setattr(history, "FAST_PATH_MIN_BYTES", threshold)
        result = rebuild(store, workers=1)
        digests.append(digest(tmp_path))
        errors.append(result.errors)
    assert digests[0] == digests[1]
    assert errors[0] == errors[1] and len(errors[0]) == 1
    assert query(tmp_path, "quarantine", "select count(*) from {rel}")[0][0] > 0
