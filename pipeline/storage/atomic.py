"""The one temporary-name scheme of atomic writes, for the home and for local files.

A file is written under a temporary name in the *same* directory and then renamed over
its final name (rename(2) replaces atomically on POSIX), so a reader, or a process killed
with -9 mid-write, never sees half a file. Temporary names start with `_tmp-` and end in
`.tmp`: hive readers (DuckDB, Spark, pyarrow datasets) skip names starting with `_`, no
data glob (`*.parquet`, `*.ndjson.zst`, `*.json`) matches them, and a cleaner finds them
all with one pattern (`TMP_GLOB`). `pipeline.storage.store.Store` uses it for the home;
`local_atomic` is the same for files that are always local (the warehouse state, reports,
exports).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_PREFIX = "_tmp-"
TMP_GLOB = f"{TMP_PREFIX}*.tmp"


def temp_name(name: str) -> str:
    """`_tmp-<random>-<name>.tmp`: where `name` is written before the rename."""
    return f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}.tmp"


@contextmanager
def local_atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on a clean exit it replaces `path`
    at once, otherwise it is deleted and `path` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name(path.name))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_local_atomic(path: Path, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to the local file `path` atomically."""
    with local_atomic(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return path
