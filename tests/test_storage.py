"""Store: atomic writes on a local disk and on stores without rename (object stores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.storage import Store


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
