"""All file I/O of the history (raw zone and Parquet) goes through one `Store`.

Why one module: atomicity, temp-file naming, locking and partition layout are easy to get
subtly wrong in several places, and the history must later move to object storage. The
`Store` speaks `pyarrow.fs`, so a local directory today and an `s3://bucket/prefix` URI
later (`pyarrow.fs.FileSystem.from_uri`) use the same code.

Layout under the root (see "Analyst tables" in README.md), declared once in
`pipeline.datasets`:
- `<folder>/account=<a>/<partition key>=<YYYY-MM-DD>/<file>` for every dataset: the raw
  zones (`raw`, `raw_charges`) and the Parquet datasets (`parquet/<name>`).
- `_locks/`: one lock file per account and day (local filesystems only).

Atomic writes: a file is written under a temporary name in the *same* directory and then
renamed over its final name, so a reader (or a process killed with -9 mid-write) never
sees half a file. Temporary names start with `_tmp-` and carry no data extension, so hive
globs such as `*/*/*.parquet` and pyarrow datasets never pick them up.

Locks: `filelock.FileLock` works between processes on one machine (local disk). An object
store has no rename and no shared lock file: there, writes are single PUTs (atomic by
themselves) and a different lock (e.g. a conditional-write lease) is needed; `lock()`
refuses rather than pretending.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from pipeline.datasets import dataset as registered
from pipeline.errors import ConfigError, DataError

TMP_PREFIX = "_tmp-"
_PARTITION_RE = re.compile(r"^account=(?P<account>[^/]+)$")
_DAY_RE = r"^{key}=(?P<day>\d{{4}}-\d{{2}}-\d{{2}})$"
# Account names end up in directory names: keep them to a safe alphabet.
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_account(account: str) -> str:
    """Return `account` if it is safe as a directory name, else raise ConfigError."""
    if not isinstance(account, str) or not ACCOUNT_RE.match(account):
        raise ConfigError(
            f"Account name {account!r} is not usable: use letters, digits, '_', '.' or '-'."
        )
    return account


def is_hidden(name: str) -> bool:
    """Names readers must skip: temporary files and dot/underscore files (hive convention)."""
    return name.startswith(("_", "."))


class Store:
    """A history root (local directory or filesystem URI) and the only way to touch its files."""

    def __init__(self, root: str | Path, *, lock_dir: str | Path | None = None) -> None:
        root_text = str(root)
        if "://" in root_text:
            self.fs, self.root = pafs.FileSystem.from_uri(root_text)
            self.is_local = isinstance(self.fs, pafs.LocalFileSystem)
        else:
            self.fs = pafs.LocalFileSystem()
            self.root = str(Path(root_text).expanduser().resolve())
            self.is_local = True
        self.root = self.root.rstrip("/")
        if lock_dir is not None:
            self.lock_dir: Path | None = Path(lock_dir)
        elif self.is_local:
            self.lock_dir = Path(self.root) / "_locks"
        else:
            self.lock_dir = None

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    # -- paths -------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """Join `parts` under the root with '/' (pyarrow.fs paths are always '/'-separated)."""
        return "/".join([self.root, *(p.strip("/") for p in parts if p)])

    def dataset_dir(self, dataset: str) -> str:
        """`raw` -> `<root>/raw`; a Parquet dataset name -> `<root>/parquet/<name>`."""
        return self.path(registered(dataset).folder)

    def partition_dir(self, dataset: str, account: str, day: date) -> str:
        """`<dataset dir>/account=<a>/<partition key>=<YYYY-MM-DD>`."""
        check_account(account)
        key = registered(dataset).partition_key
        return "/".join([self.dataset_dir(dataset), f"account={account}",
                         f"{key}={day.isoformat()}"])

    def parquet_glob(self, dataset: str) -> str:
        """The hive glob DuckDB reads a Parquet dataset with (only real partition folders;
        temp files never match it)."""
        key = registered(dataset).partition_key
        return f"{self.dataset_dir(dataset)}/account=*/{key}=*/*.parquet"

    # -- reading -----------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def open_input(self, path: str, compression: str | None = None) -> pa.NativeFile:
        """A sequential input stream, decompressing when `compression` is given (e.g. 'zstd')."""
        return self.fs.open_input_stream(path, compression=compression)

    def read_bytes(self, path: str, compression: str | None = None) -> bytes:
        with self.open_input(path, compression) as stream:
            return stream.read()

    def read_parquet(self, path: str) -> pa.Table:
        """Read one Parquet file whole (hive columns are not in our files)."""
        return pq.read_table(path, filesystem=self.fs, partitioning=None)

    def list_files(self, directory: str, suffix: str = "") -> list[str]:
        """Full paths of visible files in `directory` ending with `suffix`, sorted by name."""
        infos = self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        return sorted(
            i.path for i in infos
            if i.type == pafs.FileType.File and not is_hidden(i.base_name)
            and i.base_name.endswith(suffix)
        )

    def list_partitions(self, dataset: str) -> list[tuple[str, date]]:
        """(account, day) of every `account=/<partition key>=` directory of `dataset`, sorted."""
        day_re = re.compile(_DAY_RE.format(key=re.escape(registered(dataset).partition_key)))
        found: list[tuple[str, date]] = []
        for account_dir in self._subdirs(self.dataset_dir(dataset)):
            m = _PARTITION_RE.match(account_dir.rsplit("/", 1)[-1])
            if not m:
                continue
            for day_dir in self._subdirs(account_dir):
                d = day_re.match(day_dir.rsplit("/", 1)[-1])
                if d:
                    found.append((m["account"], date.fromisoformat(d["day"])))
        return sorted(found)

    def partition_fingerprints(self, dataset: str) -> dict[str, dict[str, str]]:
        """{account: {day: fingerprint}} of every partition of a Parquet dataset.

        A fingerprint digests the visible files' names, sizes and modification times, so a
        caller (the warehouse build) can tell which days changed without reading any data.
        """
        out: dict[str, dict[str, str]] = {}
        for account, day in self.list_partitions(dataset):
            directory = self.partition_dir(dataset, account, day)
            infos = self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
            parts = sorted(f"{i.base_name}:{i.size}:{i.mtime_ns}" for i in infos
                           if i.type == pafs.FileType.File and not is_hidden(i.base_name)
                           and i.base_name.endswith(".parquet"))
            if parts:
                digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
                out.setdefault(account, {})[day.isoformat()] = digest
        return out

    def _subdirs(self, directory: str) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        return [
            i.path for i in infos
            if i.type == pafs.FileType.Directory and not is_hidden(i.base_name)
        ]

    # -- writing -----------------------------------------------------------------------
    @contextmanager
    def open_output_atomic(
        self, path: str, compression: str | None = None
    ) -> Iterator[pa.NativeFile]:
        """Yield a stream; on clean exit its content appears at `path` at once, else nowhere."""
        directory, name = path.rsplit("/", 1)
        self.fs.create_dir(directory, recursive=True)
        if not self.is_local:
            # Object stores have no rename, but an object appears whole when its upload
            # completes: buffer, then upload once, so a failure never touches `path`.
            buffer = pa.BufferOutputStream()
            with pa.CompressedOutputStream(buffer, compression) if compression else buffer as out:
                yield out
            with self.fs.open_output_stream(path, compression=None) as stream:
                stream.write(buffer.getvalue())
            return
        target = f"{directory}/{TMP_PREFIX}{uuid.uuid4().hex}-{name}.tmp"
        try:
            with self.fs.open_output_stream(target, compression=compression) as stream:
                yield stream
            self.fs.move(target, path)  # rename(2): atomic replace on POSIX
        except BaseException:
            self._delete_quietly(target)
            raise

    def write_bytes_atomic(self, path: str, data: bytes, compression: str | None = None) -> None:
        with self.open_output_atomic(path, compression) as stream:
            stream.write(data)

    def write_parquet_atomic(self, path: str, table: pa.Table, **options: object) -> None:
        """Write `table` as one Parquet file at `path`, atomically; `options` go to pyarrow."""
        with self.open_output_atomic(path) as stream:
            pq.write_table(table, stream, **options)

    def remove_stray_temps(self, directory: str, older_than_s: float = 0.0) -> int:
        """Delete temp files left by killed writers; returns how many were removed.

        Call it with `older_than_s=0` only while holding the lock that serialises writers
        of `directory`; otherwise pass an age so a live writer's temp file is spared.
        """
        infos = self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        cutoff = time.time() - older_than_s
        removed = 0
        for info in infos:
            if info.type != pafs.FileType.File or not info.base_name.startswith(TMP_PREFIX):
                continue
            if older_than_s and info.mtime is not None and info.mtime.timestamp() > cutoff:
                continue
            self._delete_quietly(info.path)
            removed += 1
        return removed

    def _delete_quietly(self, path: str) -> None:
        with suppress(OSError):  # already gone, or never created
            self.fs.delete_file(path)

    # -- locking -----------------------------------------------------------------------
    @contextmanager
    def lock(self, account: str, day: date, timeout: float = 300.0) -> Iterator[None]:
        """Hold the inter-process lock guarding every write of one account's day partitions."""
        if self.lock_dir is None:
            raise ConfigError(
                "Locking is only available for a local history; pass lock_dir for object storage."
            )
        check_account(account)
        directory = self.lock_dir / account
        directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(directory / f"{day.isoformat()}.lock"))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise DataError(
                f"The history of account {account} on {day} stayed locked by another process "
                f"for {timeout:.0f} s; try again when it has finished."
            ) from None
        try:
            yield
        finally:
            lock.release()
