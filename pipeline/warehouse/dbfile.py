"""The DuckDB file's lifecycle: the build lock, a hidden new file, written, synced and
renamed into place.

Why its own module: analysts must never be blocked or see a half-built warehouse. Each
build writes `.warehouse.duckdb.<build>.building` (fresh, or a copy of the live file that
it updates in place), syncs it once, and renames it over `warehouse.duckdb`; a session that
has the old file open keeps reading it. What a killed build leaves is hidden and removed by
the next build, under the build lock (`build_lock`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from filelock import FileLock, Timeout

from pipeline.core.errors import WarehouseError
from pipeline.storage.atomic import TMP_PREFIX
from pipeline.storage.objectstore import register_on
from pipeline.warehouse.models import sql_literal
from pipeline.warehouse.paths import Paths

# The storage format the file is written in (see `connect_build`).
STORAGE_COMPAT = "v1.4.0"


@contextmanager
def build_lock(paths: Paths, timeout: float) -> Iterator[None]:
    """One build at a time per home (`paths.lock`, beside the DuckDB file): a second build
    waits up to `timeout` seconds, then says so in one sentence."""
    lock = FileLock(str(paths.lock))
    try:
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        raise WarehouseError(
            f"Another build of {paths.db} is still running after {timeout:.0f} s; "
            "try again when it has finished."
        ) from exc
    try:
        yield
    finally:
        lock.release()


def building_file(paths: Paths, build_id: str) -> Path:
    """The hidden file a build writes before it is renamed over `paths.db`."""
    return paths.db.with_name(f".{paths.db.name}.{build_id}.building")


def connect_build(path: Path, paths: Paths, memory_limit: str, threads: int | None) -> Any:
    """A connection to the build's file, set up for a build (not for analysts)."""
    # The file is written in an older storage format so that the `duckdb` CLI analysts use
    # (PyPI's duckdb-cli, a release behind the Python package) can open it.
    con = duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_COMPAT})
    # No fsync per commit: a build's file is thrown away unless the build completes, and
    # `sync_file` makes it durable once, before it is swapped in (on ext4 each commit's
    # fsync also waited for the whole copied warehouse to reach the disk).
    con.execute("SET fsync_mode = 'NONE'")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    # Every model rebinds the views over the whole history (hundreds of day files): without
    # the cache each bind re-reads every file's footer, which made an incremental build
    # cost in proportion to the history's length.
    con.execute("SET parquet_metadata_cache = true")
    register_on(con, paths.home)
    tmp = paths.db.parent / ".duckdb_tmp"
    con.execute(f"SET temp_directory = '{sql_literal(str(tmp))}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def file_identity(path: Path) -> list[int]:
    """What changes when a file is replaced or written to: inode, size, modification time."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def start_copy(paths: Paths, tmp_db: Path, full: bool) -> Future[Any] | None:
    """Copy the live warehouse to `tmp_db` in the background, in case the build can update
    it in place (None: a full build, or no live file yet). It runs while the history is
    listed (40 ms each at a year); `discard_copy` deletes it if it goes unused."""
    if full or not paths.db.exists():
        return None
    return in_background(shutil.copyfile, paths.db, tmp_db)


def open_build_copy(paths: Paths, tmp_db: Path, copying: Future[Any] | None,
                    state: dict[str, Any], memory_limit: str,
                    threads: int | None) -> Any | None:
    """The copy of the live warehouse (`copying` into `tmp_db`) to update in place, or
    None (the caller deletes the copy) when there is none or the live file is not the one
    the state's build swapped in: a build killed after writing its state left the
    warehouse before it live, whose tables the next build must not carry, or someone wrote
    to it since (what an analyst writes there is lost at the next build; a read-only
    session changes nothing)."""
    if copying is None:
        return None
    copying.result()
    try:
        untouched = state.get("db_file") == file_identity(paths.db)
    except FileNotFoundError:
        untouched = False
    return connect_build(tmp_db, paths, memory_limit, threads) if untouched else None


def sync_file(path: Path) -> None:
    """Wait until `path`'s content is on disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def in_background(work: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run `work(*args)` on its own thread; the future holds its result or its error."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(work(*args))
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)

    threading.Thread(target=run, name=f"warehouse-{work.__name__}", daemon=True).start()
    return future


def discard_copy(copying: Future[Any] | None, tmp_db: Path) -> None:
    """Wait for a copy of the warehouse the build will not use, and delete it."""
    if copying is not None:
        with contextlib.suppress(OSError):
            copying.result()
        tmp_db.unlink(missing_ok=True)


def retire(db: Path, build_id: str) -> None:
    """Keep a second name for the live file the build is about to replace, so that the
    rename does not free its blocks: freeing 100 MB took 30 ms on a disk mounted with
    `discard`, and the next build deletes it while it lists the history (`delete_retired`).
    Sessions that have it open read it either way."""
    with contextlib.suppress(OSError):  # no file yet, or no hard links here: plain rename
        os.link(db, db.with_name(f".{db.name}.{build_id}.retired"))


def delete_retired(paths: Paths) -> None:
    """Delete the second names `retire` kept for files earlier builds replaced."""
    for retired in paths.db.parent.glob(f".{paths.db.name}.*.retired"):
        with contextlib.suppress(OSError):  # housekeeping: the next build tries again
            retired.unlink(missing_ok=True)


def remove_killed_build_files(paths: Paths) -> None:
    """Delete the hidden half-written database and state files of a killed build.

    Safe only under the build lock: no other build can be writing them then.
    """
    for pattern in (f".{paths.db.name}.*.building*", f"{TMP_PREFIX}*-{paths.state.name}.tmp"):
        for leftover in paths.db.parent.glob(pattern):
            leftover.unlink(missing_ok=True)
