"""The raw landing zone: layout, header, atomic files, lazy reading, unreadable files."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError, DataError
from pipeline.landing.raw import (
    RawSnapshot,
    iter_snapshots,
    read_snapshot,
    snapshot_files,
    write_snapshot,
)
from pipeline.storage.store import TMP_PREFIX, Store

AT = datetime(2026, 11, 26, 17, 15, 0, 123456, tzinfo=UTC)


def snap(i: int = 0, at: datetime = AT, account: str = "default", n: int = 3) -> RawSnapshot:
    records = [{"id": k, "jupyter_token": f"tok-{k}-secret", "extra_env": [["K", "v-secret"]]}
               for k in range(n)]
    return RawSnapshot(snapshot_id=f"id{i}", snapshot_at=at, account=account, records=records,
                       pages=2, requests=3, retries=1, source="simulator")


def test_layout_header_and_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path)
    path = write_snapshot(store, snap())
    expected = tmp_path / "raw/account=default/snapshot_date=2026-11-26"
    assert Path(path) == expected / "20261126T171500.123456Z_id0.ndjson.zst"
    assert [p.name for p in expected.iterdir()] == [Path(path).name]  # no temp left behind
    back = read_snapshot(store, path)
    assert (back.snapshot_id, back.snapshot_at, back.account) == ("id0", AT, "default")
    assert (back.pages, back.requests, back.retries, back.source) == (2, 3, 1, "simulator")
    records = list(back.records)
    assert records == list(back.records)  # re-iterable
    assert records[0] == {"id": 0, "has_jupyter_token": True, "extra_env_names": ["K"]}


def test_duckdb_reads_raw_files(tmp_path: Path) -> None:
    import duckdb

    store = Store(tmp_path)
    write_snapshot(store, snap(n=4))
    with duckdb.connect() as con:
        rows = con.execute(
            f"select count(*) from read_ndjson('{tmp_path}/raw/*/*/*.ndjson.zst')").fetchall()
    assert rows == [(5,)]  # header + 4 records


def test_iter_snapshots_filters_and_orders(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for i in range(4):
        write_snapshot(store, snap(i, AT + timedelta(hours=8 * i)))
    write_snapshot(store, snap(9, AT, account="other"))
    all_ids = [s.snapshot_id for s in iter_snapshots(store)]
    assert all_ids == ["id0", "id1", "id2", "id3", "id9"]
    window = iter_snapshots(store, account="default", date_from=date(2026, 11, 27),
                            date_to=date(2026, 11, 27))
    assert [s.snapshot_id for s in window] == ["id1", "id2", "id3"]
    before = iter_snapshots(store, date_to=date(2026, 11, 26))
    assert [s.snapshot_id for s in before] == ["id0", "id9"]
    assert list(snapshot_files(store, "default", date(2026, 11, 26))) == ["id0"]


def test_unreadable_file_is_a_data_error_naming_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    good = write_snapshot(store, snap(0))
    bad = write_snapshot(store, snap(1, AT + timedelta(minutes=1)))
    Path(bad).write_bytes(b"this is not zstd")
    with pytest.raises(DataError, match=Path(bad).name):
        list(iter_snapshots(store))
    errors: list[DataError] = []
    assert [s.path for s in iter_snapshots(store, errors=errors)] == [good]
    assert len(errors) == 1 and Path(bad).name in str(errors[0])


def test_broken_record_line_is_a_data_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    path = write_snapshot(store, snap(0))
    data = store.read_bytes(path, "zstd") + b"{broken\n"
    store.write_bytes_atomic(path, data, compression="zstd")
    snapshot = read_snapshot(store, path)
    with pytest.raises(DataError, match="line 5"):
        list(snapshot.records)


def test_stray_temp_files_are_invisible_and_cleaned(tmp_path: Path) -> None:
    store = Store(tmp_path)
    path = write_snapshot(store, snap(0))
    stray = Path(path).parent / f"{TMP_PREFIX}dead-writer.tmp"
    stray.write_bytes(b"half a file")
    assert list(snapshot_files(store, "default", AT.date()).values()) == [path]
    assert store.remove_stray_temps(str(stray.parent), older_than_s=3600) == 0  # too young
    assert store.remove_stray_temps(str(stray.parent)) == 1
    assert not stray.exists()


def test_bad_names_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(ConfigError):
        write_snapshot(store, snap(0, account="../evil"))
    with pytest.raises(ValueError):
        write_snapshot(store, RawSnapshot(snapshot_id="a/b", snapshot_at=AT, account="x"))
    with pytest.raises(ValueError):
        write_snapshot(store, RawSnapshot(snapshot_id="a", snapshot_at=AT.replace(tzinfo=None),
                                          account="x"))


def test_a_held_lock_times_out_with_one_sentence(tmp_path: Path) -> None:
    store = Store(tmp_path)
    day = date(2026, 1, 1)
    with (store.lock("acct", day), pytest.raises(DataError, match="stayed locked"),
          store.lock("acct", day, timeout=0.2)):
        pass
    with store.lock("acct", day, timeout=0.2):  # released after use
        pass
