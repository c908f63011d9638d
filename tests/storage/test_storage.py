"""Store: atomic writes on a local disk and on stores without rename (object stores)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipeline.storage.store import Store


def test_failed_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    """(The object-store path, buffer then one PUT, is tested on a real S3 server in
    test_s3.py.)"""
    store = Store(tmp_path)
    path = store.path("raw", "x.ndjson.zst")
    store.write_bytes_atomic(path, b"first version", compression="zstd")
    with pytest.raises(RuntimeError), store.open_output_atomic(path, "zstd") as out:
        out.write(b"half of a second")
        raise RuntimeError("killed mid-write")
    assert store.read_bytes(path, "zstd") == b"first version"
    store.write_bytes_atomic(path, b"second version", compression="zstd")
    assert store.read_bytes(path, "zstd") == b"second version"
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["x.ndjson.zst"]


def test_partition_fingerprints_change_with_a_day_and_ignore_what_readers_skip(
        tmp_path: Path) -> None:
    import pyarrow as pa

    store = Store(tmp_path)
    day1, day2 = (store.partition_dir("snapshots", "acct", d)
                  for d in (date(2026, 11, 20), date(2026, 11, 21)))
    store.write_parquet_atomic(f"{day1}/part-0.parquet", pa.table({"x": [1]}))
    store.write_parquet_atomic(f"{day2}/part-0.parquet", pa.table({"x": [2]}))
    before = store.partition_fingerprints("snapshots")
    assert set(before["acct"]) == {"2026-11-20", "2026-11-21"}
    # What hive readers skip changes nothing: temp files, hidden files, deeper folders.
    store.write_bytes_atomic(f"{day1}/_tmp-x-part-0.parquet.tmp", b"half")
    store.write_bytes_atomic(f"{day1}/.hidden.parquet", b"x")
    store.write_bytes_atomic(f"{day1}/nested/part-9.parquet", b"x")
    store.write_bytes_atomic(store.path("parquet/snapshots/_staging/part.parquet"), b"x")
    assert store.partition_fingerprints("snapshots") == before
    store.write_parquet_atomic(f"{day2}/part-0.parquet", pa.table({"x": [2, 3]}))
    after = store.partition_fingerprints("snapshots")
    assert after["acct"]["2026-11-20"] == before["acct"]["2026-11-20"]
    assert after["acct"]["2026-11-21"] != before["acct"]["2026-11-21"]
