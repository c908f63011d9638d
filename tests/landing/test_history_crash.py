"""kill -9 in the middle of `land_pending` or `rebuild_day`: nothing half-written is visible,
and the next run of either heals the day."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from pipeline.landing.history import land_pending, rebuild, rebuild_day
from pipeline.landing.raw import RawSnapshot, iter_snapshots, write_snapshot
from pipeline.sim.fleet import FleetModel
from pipeline.storage.store import TMP_PREFIX, Store

DAY = date(2026, 4, 1)

WRITER = textwrap.dedent("""
    import sys
    from datetime import datetime, timedelta, UTC
    from pipeline.sim.fleet import FleetModel
    from pipeline.landing.history import land_pending
    from pipeline.landing.raw import RawSnapshot, write_snapshot
    from pipeline.storage.store import Store
    store = Store(sys.argv[1])
    start = int(sys.argv[2])
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    records = FleetModel(seed=4, size=400, drift_rate=0.02, broken_rate=0.01).records_at(t0)
    print("ready", flush=True)
    for i in range(start, start + 1000):
        snap = RawSnapshot(snapshot_id=f"k{i:04d}", snapshot_at=t0 + timedelta(seconds=i),
                           account="acct", records=records)
        write_snapshot(store, snap)
        land_pending(store, "acct", snap.day)
""")
REBUILDER = textwrap.dedent("""
    import sys
    from datetime import date
    from pipeline.landing.history import rebuild_day
    from pipeline.storage.store import Store
    store = Store(sys.argv[1])
    print("ready", flush=True)
    while True:
        rebuild_day(store, "acct", date(2026, 4, 1))
""")


def visible_files_read(root: Path) -> int:
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix == ".parquet"]
    for path in files:
        pq.read_table(path)  # raises if half-written
    if not any("instance_snapshots" in p.parts for p in files):
        return 0  # killed before the first day file appeared: nothing visible, nothing broken
    with duckdb.connect() as con:
        con.execute(f"select count(*) from read_parquet('{root}/parquet/instance_snapshots/"
                    "*/*/*.parquet', hive_partitioning = true)").fetchall()
    return len(files)


def _logged(root: Path) -> set[str]:
    """Snapshot ids in the snapshot log (the commit record)."""
    if not list(root.glob("parquet/snapshots/*/*/*.parquet")):
        return set()
    with duckdb.connect() as con:
        return {r[0] for r in con.execute(
            f"select snapshot_id from read_parquet('{root}/parquet/snapshots/*/*/*.parquet')"
        ).fetchall()}


def _interrupted(root: Path, store: Store) -> bool:
    """The kill left work behind: a raw snapshot not in the log, or a stray temp file."""
    raw = {s.snapshot_id for s in iter_snapshots(store)}
    return bool(raw - _logged(root)) or any(root.rglob(f"{TMP_PREFIX}*"))


def test_kill_9_during_landing_never_leaves_a_broken_visible_file(tmp_path: Path) -> None:
    rng = random.Random(1)
    store = Store(tmp_path)
    kills = 0
    # At least four kills, the last of which interrupted work (a kill between a landing
    # and the next raw write leaves nothing to heal); each round heals the previous one.
    for round_ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(round_ * 1000)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.3, 2.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL  # still writing when killed
        kills += 1
        if (tmp_path / "parquet").exists():
            visible_files_read(tmp_path)
        if kills >= 4 and _interrupted(tmp_path, store):
            break
    assert _interrupted(tmp_path, store)  # the kills really interrupted work
    raw = {s.snapshot_id: sum(1 for r in s.records if isinstance(r, dict)
                              and type(r.get("id")) is int) for s in iter_snapshots(store)}
    assert len(raw) >= kills  # every round got at least one raw snapshot out
    logged_before = _logged(tmp_path)

    # Heal by landing again: every raw snapshot missing from the log lands.
    healing = land_pending(store, "acct", DAY)
    assert set(healing.snapshot_ids) == set(raw) - logged_before
    assert not any(p.name.startswith(TMP_PREFIX)
                   for p in (tmp_path / "parquet").rglob("*"))  # stray temps cleaned
    with duckdb.connect() as con:
        got = dict(con.execute(
            f"select snapshot_id, count(*) from read_parquet('{tmp_path}/parquet/"
            "instance_snapshots/*/*/*.parquet') group by 1").fetchall())
        log = {r[0] for r in con.execute(
            f"select snapshot_id from read_parquet('{tmp_path}/parquet/snapshots/*/*/*.parquet')"
        ).fetchall()}
    assert got == raw and log == set(raw)
    files_before = visible_files_read(tmp_path)
    rebuild(store)
    assert visible_files_read(tmp_path) == files_before


def parquet_digest(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted((root / "parquet").rglob("*")) if p.is_file()}


def test_kill_9_during_rebuild_day_leaves_readable_files_and_the_next_rebuild_heals(
        tmp_path: Path) -> None:
    store = Store(tmp_path)
    fleet = FleetModel(seed=4, size=400, drift_rate=0.02, broken_rate=0.01)
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    for i in range(30):
        at = t0 + timedelta(minutes=15 * i)
        write_snapshot(store, RawSnapshot(snapshot_id=f"r{i:03d}", snapshot_at=at,
                                          account="acct", records=fleet.records_at(at)))
    clean = rebuild_day(store, "acct", DAY)
    assert clean.snapshots == 30 and clean.errors == []
    expected = parquet_digest(tmp_path)
    rng = random.Random(2)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", REBUILDER, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.5, 3.0))
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL  # it was still rebuilding
        visible_files_read(tmp_path)
    healed = rebuild_day(store, "acct", DAY)
    assert healed.snapshots == 30
    assert parquet_digest(tmp_path) == expected  # byte-identical, no stray temp files
    assert land_pending(store, "acct", DAY).snapshots == 0  # the log is complete
