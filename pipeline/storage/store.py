"""All file I/O of the history (raw zone and Parquet) goes through one `Store`.

Why one module: atomicity, temp-file naming, locking and partition layout are easy to get
subtly wrong in several places, and the history must later move to object storage. The
`Store` speaks `pyarrow.fs`, so a local directory today and an `s3://bucket/prefix` URI
later (`pyarrow.fs.FileSystem.from_uri`) use the same code.

Layout under the root (see "Analyst tables" in README.md), declared once in
`pipeline.storage.datasets`:
- `<folder>/account=<a>/<partition key>=<YYYY-MM-DD>/<file>` for every dataset of an
  account: the raw zones (`raw`, `raw_charges`) and the Parquet datasets
  (`parquet/<name>`); `<folder>/<partition key>=<YYYY-MM-DD>/<file>` for a dataset of no
  account (`per_account=False`: the market's `raw_market`, `parquet/market_*`).
- `_locks/`: one lock per account and day (`_locks/<account>/<day>.lock`), and one per day
  for the datasets of no account (`_locks/_shared/<day>.lock`); leases on object stores.

Atomic writes: a file is written under a temporary name in the *same* directory and then
renamed over its final name, so a reader (or a process killed with -9 mid-write) never
sees half a file. Temporary names start with `_tmp-` and carry no data extension, so hive
globs such as `*/*/*.parquet` and pyarrow datasets never pick them up.

Locks: `filelock.FileLock` works between processes on one machine (local disk).

Object stores (`s3://bucket/prefix`, see `pipeline.storage.objectstore`) have no rename and no
shared lock file. There every write is one PUT of the whole object (buffered first), so a
killed writer leaves nothing visible. The day's lock is a lease object under `_locks/`,
created with `If-None-Match: *` (an expired one is taken over with `If-Match`), and while
it is held every write of a day file is itself conditional on the version read under the
lease (`If-Match: <etag>`, or `If-None-Match: *` for a new file). A writer whose lease
expired and was taken over therefore fails with `WriteConflict` instead of overwriting
silently, and `run_locked` retries the whole read-modify-write.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import date
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from pipeline.core.errors import ConfigError, DataError
from pipeline.storage.datasets import Dataset
from pipeline.storage.datasets import dataset as registered
from pipeline.storage.objectstore import (
    DEFAULT_LEASE_SECONDS,
    ObjectStore,
    WriteConflict,
    arrow_filesystem,
    fsspec_filesystem,
    is_remote,
    parse_home,
)

T = TypeVar("T")
TMP_PREFIX = "_tmp-"
_PARTITION_RE = re.compile(r"^account=(?P<account>[^/]+)$")
_DAY_RE = r"^{key}=(?P<day>\d{{4}}-\d{{2}}-\d{{2}})$"
# Account names end up in directory names: keep them to a safe alphabet.
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# The account key of a dataset of no account in listings that end up as JSON
# (`partition_files`, fingerprints); no account name can be empty.
NO_ACCOUNT = ""
# The lock folder of the partitions of no account (no account name starts with '_').
_SHARED_LOCKS = "_shared"


def check_account(account: str) -> str:
    """Return `account` if it is safe as a directory name, else raise ConfigError."""
    if not isinstance(account, str) or not ACCOUNT_RE.match(account):
        raise ConfigError(
            f"Account name {account!r} is not usable: use letters, digits, '_', '.' or '-'."
        )
    return account


def sql_file_list(uris: Iterable[str]) -> str:
    """`['<uri>', ...]`: files as the DuckDB list literal `read_parquet` accepts."""
    return "[" + ", ".join("'" + uri.replace("'", "''") + "'" for uri in uris) + "]"


def _partition_parts(spec: Dataset, account: str | None, day: date) -> list[str]:
    """The hive folder names of one partition of `spec`: [`account=<a>`,] `<key>=<day>`.

    An account given for a dataset of no account (or none for one of an account) is a
    programming error: the layout would differ from what readers glob.
    """
    if spec.per_account != (account is not None):
        raise ValueError(f"dataset {spec.name!r} is partitioned by "
                         f"{', '.join(spec.partition_columns)}: account={account!r} does not fit")
    head = [f"account={check_account(account)}"] if account is not None else []
    return [*head, f"{spec.partition_key}={day.isoformat()}"]


def _days(spec: Dataset, directories: Iterable[str]) -> list[date]:
    """The days of the `<partition key>=<YYYY-MM-DD>` directories among `directories`."""
    day_re = re.compile(_DAY_RE.format(key=re.escape(spec.partition_key)))
    return [date.fromisoformat(m["day"]) for d in directories
            if (m := day_re.match(d.rsplit("/", 1)[-1]))]


def is_hidden(name: str) -> bool:
    """Names readers must skip: temporary files and dot/underscore files (hive convention)."""
    return name.startswith(("_", "."))


class Store:
    """A history root (local directory or filesystem URI) and the only way to touch its files."""

    def __init__(self, root: str | Path, *, lock_dir: str | Path | None = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        root_text = str(root)
        self.remote: ObjectStore | None = None
        self.lease_seconds = lease_seconds
        self._fences = threading.local()
        if is_remote(root_text):
            config = parse_home(root_text)
            self.remote = ObjectStore(config)
            self.remote.check_access()
            self.fs = arrow_filesystem(config)
            self.root = f"{config.bucket}/{config.prefix}"
            self.is_local = False
        elif root_text.startswith("file://"):
            self.fs, self.root = pafs.FileSystem.from_uri(root_text)
            self.is_local = True
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
        return f"Store({self.uri(self.root)!r})"

    def __getstate__(self) -> dict[str, object]:  # thread-locals do not pickle
        return {k: v for k, v in self.__dict__.items() if k != "_fences"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._fences = threading.local()

    # -- paths -------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """Join `parts` under the root with '/' (pyarrow.fs paths are always '/'-separated)."""
        return "/".join([self.root, *(p.strip("/") for p in parts if p)])

    def uri(self, path: str) -> str:
        """`path` as other programs (DuckDB, Spark) name it: `s3://...` on an object store."""
        return path if self.remote is None else f"s3://{path}"

    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection that can read this store's paths (`parquet_glob`):
        on an object store, through the fsspec filesystem registered on it."""
        con = duckdb.connect()
        if self.remote is not None:
            con.register_filesystem(fsspec_filesystem(self.remote.config))
        return con

    def dataset_dir(self, dataset: str) -> str:
        """`raw` -> `<root>/raw`; a Parquet dataset name -> `<root>/parquet/<name>`."""
        return self.path(registered(dataset).folder)

    def partition_dir(self, dataset: str, account: str | None, day: date) -> str:
        """`<dataset dir>/account=<a>/<partition key>=<YYYY-MM-DD>`, or without the
        `account=` level for a dataset of no account (pass `account=None` for those)."""
        return "/".join([self.dataset_dir(dataset),
                         *_partition_parts(registered(dataset), account, day)])

    def parquet_glob(self, dataset: str) -> str:
        """The hive glob DuckDB reads a Parquet dataset with (only real partition folders;
        temp files never match it)."""
        levels = [f"{column}=*" for column in registered(dataset).partition_columns]
        return self.uri("/".join([self.dataset_dir(dataset), *levels, "*.parquet"]))

    # -- reading -----------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        fence = self._fence()
        if fence is not None:  # under a lease: remember the version the decision is based on
            return self._fenced_etag(fence, path) is not None
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def open_input(self, path: str, compression: str | None = None) -> pa.NativeFile:
        """A sequential input stream, decompressing when `compression` is given (e.g. 'zstd')."""
        return self.fs.open_input_stream(path, compression=compression)

    def read_bytes(self, path: str, compression: str | None = None) -> bytes:
        with self.open_input(path, compression) as stream:
            return stream.read()

    def read_parquet(self, path: str) -> pa.Table:
        """Read one Parquet file whole (hive columns are not in our files).

        Through `ParquetFile`, not `pq.read_table`: the latter imports `pyarrow.dataset`
        (about 0.08 s of every `collect`; with pandas installed, 0.23 s with pandas).
        """
        fence = self._fence()
        if fence is not None:
            self._fenced_etag(fence, path)
        with self.fs.open_input_file(path) as source:
            return pq.ParquetFile(source, pre_buffer=True).read()

    def list_files(self, directory: str, suffix: str = "") -> list[str]:
        """Full paths of visible files in `directory` ending with `suffix`, sorted by name."""
        infos = self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        return sorted(
            i.path for i in infos
            if i.type == pafs.FileType.File and not is_hidden(i.base_name)
            and i.base_name.endswith(suffix)
        )

    def accounts(self, dataset: str) -> list[str]:
        """The accounts with an `account=` directory in `dataset`, sorted (none for a
        dataset of no account)."""
        if not registered(dataset).per_account:
            return []
        names = (d.rsplit("/", 1)[-1] for d in self._subdirs(self.dataset_dir(dataset)))
        return sorted(m["account"] for name in names if (m := _PARTITION_RE.match(name)))

    def list_partitions(self, dataset: str) -> list[tuple[str | None, date]]:
        """(account, day) of every partition directory of `dataset`, sorted; the account is
        None for a dataset of no account."""
        found: list[tuple[str | None, date]] = []
        for account, directory in self._account_dirs(dataset):
            for day in _days(registered(dataset), self._subdirs(directory)):
                found.append((account, day))
        return sorted(found, key=lambda p: (p[0] or "", p[1]))

    def parquet_files(self, dataset: str, days: Iterable[date],
                      accounts: Iterable[str] | None = None) -> list[str]:
        """The visible Parquet files of `dataset` on `days`, of `accounts` (default: all;
        leave it out for a dataset of no account), as DuckDB names them (see `uri`).

        What a reader gives DuckDB instead of `parquet_glob` when only some days matter:
        DuckDB reads the footer of every file it is given (the staging models union by
        name), so a glob costs a scan of the whole history's metadata, a list only its days.
        """
        chosen: list[str | None]
        if accounts is not None:
            chosen = list(accounts)
        else:
            chosen = [account for account, _ in self._account_dirs(dataset)]
        days = list(days)
        return [self.uri(path) for account in chosen for day in days
                for path in self.list_files(self.partition_dir(dataset, account, day),
                                            ".parquet")]

    def partition_fingerprints(self, dataset: str) -> dict[str, dict[str, str]]:
        """{account: {day: fingerprint}} of every partition of a Parquet dataset (the
        account is `NO_ACCOUNT` for a dataset of no account: the keys survive JSON).

        A fingerprint digests the visible files' names, sizes and modification times, so a
        caller (the warehouse build) can tell which days changed without reading any data.
        One recursive listing of the dataset, not one per partition: on an object store a
        year of days is a few paginated LIST calls instead of hundreds.
        """
        return self.fingerprints(self.partition_files(dataset))

    @staticmethod
    def fingerprints(listing: dict[tuple[str, str], list[pafs.FileInfo]]
                     ) -> dict[str, dict[str, str]]:
        """`partition_fingerprints` of a `partition_files` listing already made."""
        out: dict[str, dict[str, str]] = {}
        for (account, day), files in sorted(listing.items()):
            names = sorted(f"{info.base_name}:{info.size}:{info.mtime_ns}" for info in files)
            digest = hashlib.sha1("|".join(names).encode()).hexdigest()[:16]
            out.setdefault(account, {})[day] = digest
        return out

    def partition_files(self, dataset: str) -> dict[tuple[str, str], list[pafs.FileInfo]]:
        """{(account, day): the visible Parquet files} of a dataset, from one listing (the
        account is `NO_ACCOUNT` for a dataset of no account)."""
        spec = registered(dataset)
        day_re = re.compile(_DAY_RE.format(key=re.escape(spec.partition_key)))
        root = self.dataset_dir(dataset)
        infos = self.fs.get_file_info(
            pafs.FileSelector(root, allow_not_found=True, recursive=True))
        depth = len(spec.partition_columns)
        files: dict[tuple[str, str], list[pafs.FileInfo]] = {}
        for info in infos:
            parts = info.path[len(root) + 1:].split("/")
            if (info.type != pafs.FileType.File or len(parts) != depth + 1
                    or is_hidden(parts[-1]) or not parts[-1].endswith(".parquet")):
                continue
            account = _PARTITION_RE.match(parts[0]) if spec.per_account else None
            day = day_re.match(parts[depth - 1])
            if day and (account or not spec.per_account):
                key = account["account"] if account else NO_ACCOUNT
                files.setdefault((key, day["day"]), []).append(info)
        return files

    def _account_dirs(self, dataset: str) -> list[tuple[str | None, str]]:
        """(account, its directory) of `dataset`; (None, the dataset's directory) for a
        dataset of no account, whose day directories sit right under it."""
        root = self.dataset_dir(dataset)
        if not registered(dataset).per_account:
            return [(None, root)]
        return [(account, f"{root}/account={account}") for account in self.accounts(dataset)]

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
        if self.remote is not None:
            # Object stores have no rename, but an object appears whole when its PUT
            # completes: buffer, then PUT once, so a failure never touches `path`.
            buffer = pa.BufferOutputStream()
            with pa.CompressedOutputStream(buffer, compression) if compression else buffer as out:
                yield out
            self._put(path, buffer.getvalue().to_pybytes())
            return
        self.fs.create_dir(directory, recursive=True)
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

    def publish_file(self, local_file: Path, path: str) -> None:
        """Move a finished local file to `path` atomically (rename, or one PUT)."""
        if self.remote is None:
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            try:
                os.replace(local_file, path)
                return
            except OSError:  # another device: copy under a temp name, then rename
                pass
        with open(local_file, "rb") as source, self.open_output_atomic(path) as stream:
            while chunk := source.read(1 << 22):
                stream.write(chunk)
        local_file.unlink(missing_ok=True)

    def delete(self, path: str) -> None:
        """Delete one file; a missing file is not an error."""
        if self.remote is not None:
            self.remote.delete(path)
        else:
            self._delete_quietly(path)

    def walk_files(self, directory: str) -> list[str]:
        """Every file under `directory`, recursively (full paths, sorted)."""
        infos = self.fs.get_file_info(
            pafs.FileSelector(directory, allow_not_found=True, recursive=True))
        return sorted(i.path for i in infos if i.type == pafs.FileType.File)

    def _put(self, path: str, data: bytes) -> None:
        """One PUT; under a lease, conditional on the version this holder last saw."""
        assert self.remote is not None
        fence = self._fence()
        if fence is None:
            self.remote.put(path, data)
            return
        expected = self._fenced_etag(fence, path)
        fence[path] = self.remote.put(path, data, if_match=expected,
                                      if_none_match=expected is None)

    def _fence(self) -> dict[str, str | None] | None:
        return getattr(self._fences, "current", None)

    def _fenced_etag(self, fence: dict[str, str | None], path: str) -> str | None:
        if path not in fence:
            assert self.remote is not None
            fence[path] = self.remote.etag(path)
        return fence[path]

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
    def lock(self, account: str | None, day: date, timeout: float = 300.0) -> Iterator[None]:
        """Hold the inter-process lock guarding every write of one account's day partitions
        (`account=None`: the day's partitions of the datasets of no account).

        On an object store: a lease object (see the module docstring); a lost race shows
        up as WriteConflict from a write, which `run_locked` retries.
        """
        folder = _SHARED_LOCKS if account is None else check_account(account)
        what = (f"The history of account {account} on {day}" if account is not None
                else f"The history of no account (market data) on {day}")
        if self.remote is not None and self.lock_dir is None:
            with self.object_lease(f"{folder}/{day.isoformat()}", timeout, what):
                yield
            return
        if self.lock_dir is None:
            raise ConfigError(
                "Locking is only available for a local history; pass lock_dir for object storage."
            )
        directory = self.lock_dir / folder
        directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(directory / f"{day.isoformat()}.lock"))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise DataError(
                f"{what} stayed locked by another process for {timeout:.0f} s; "
                "try again when it has finished."
            ) from None
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def object_lease(self, name: str, timeout: float, what: str) -> Iterator[None]:
        """Hold the lease `_locks/<name>.lease` of an object-store home; writes made while
        it is held are fenced (conditional on what this holder read)."""
        assert self.remote is not None
        locks = self.path("_locks")
        self.remote.require_conditional_writes(locks)
        with self.remote.lease(f"{locks}/{name}.lease", timeout=timeout,
                               seconds=self.lease_seconds, what=what):
            self._fences.current = {}
            try:
                yield
            finally:
                self._fences.current = None

    def run_locked(self, account: str | None, day: date, work: Callable[[], T],
                   attempts: int = 5) -> T:
        """`work()` under the day's lock; retried from scratch when a conditional write lost
        a race (only possible on an object store), so nothing is overwritten silently."""
        for attempt in range(1, attempts + 1):
            try:
                with self.lock(account, day):
                    return work()
            except WriteConflict:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")
