"""The raw landing zone: each snapshot's API records, scrubbed, as one zstd NDJSON file.

The raw zone is the source of truth: every Parquet file can be re-derived from it
(`pipeline.landing.history.rebuild`). One file per snapshot:

    raw/account=<a>/snapshot_date=<YYYY-MM-DD>/<20261126T171500.123456Z>_<snapshot_id>.ndjson.zst

The first line is a header `{"_snapshot": {...}}` (id, time, account, pages, requests,
retries, source, schema_version, client_version); every further line is one record after
`pipeline.core.secrets.scrub`. zstd because it decompresses several times faster than gzip and
DuckDB reads `.ndjson.zst` directly. File names sort chronologically and carry the
snapshot id, so a day's snapshot ids are known from a directory listing alone.
Files are written atomically: a snapshot is complete or absent, never partial.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

import orjson

from pipeline import __version__
from pipeline.core.errors import DataError
from pipeline.core.secrets import scrub
from pipeline.landing.rawzone import (
    COMPRESSION,
    format_time,
    parse_time,
    raw_file_path,
    raw_files,
    reason,
    write_ndjson,
)
from pipeline.landing.rawzone import raw_partitions as zone_partitions
from pipeline.storage.datasets import RAW
from pipeline.storage.schema import SCHEMA_VERSION
from pipeline.storage.store import Store, check_account

SUFFIX = ".ndjson.zst"
SOURCES = ("simulator", "vast")


@dataclass(frozen=True)
class RawSnapshot:
    """One snapshot of one account; `records` may be a lazy, re-iterable view of a file."""

    snapshot_id: str
    snapshot_at: datetime
    account: str
    records: Iterable[object] = ()
    pages: int = 0
    requests: int = 0
    retries: int = 0
    source: str = "simulator"
    schema_version: int = SCHEMA_VERSION
    client_version: str = __version__
    path: str | None = field(default=None, compare=False)

    @property
    def day(self) -> date:
        """The UTC date that partitions this snapshot."""
        return self.snapshot_at.astimezone(UTC).date()

    def header(self) -> dict[str, object]:
        return {
            "snapshot_id": self.snapshot_id,
            "snapshot_at": format_time(self.snapshot_at),
            "account": self.account,
            "pages": self.pages,
            "requests": self.requests,
            "retries": self.retries,
            "source": self.source,
            "schema_version": self.schema_version,
            "client_version": self.client_version,
        }


def new_snapshot_id() -> str:
    """A fresh, file-name-safe snapshot id."""
    return uuid.uuid4().hex


def snapshot_path(store: Store, snapshot: RawSnapshot) -> str:
    """Where `snapshot` lives in the raw zone."""
    return raw_file_path(store, RAW, snapshot.account, snapshot.day, snapshot.snapshot_at,
                         snapshot.snapshot_id, SUFFIX)


def write_snapshot(store: Store, snapshot: RawSnapshot) -> str:
    """Scrub and write `snapshot` atomically; returns its path. Rewriting the same id replaces."""
    check_account(snapshot.account)
    if snapshot.source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    path = snapshot_path(store, snapshot)
    write_ndjson(store, path, "_snapshot", snapshot.header(),
                 (scrub(r) for r in snapshot.records))
    return path


def snapshot_files(store: Store, account: str, day: date) -> dict[str, str]:
    """snapshot_id -> path of every raw file of one account and day (from names alone)."""
    return raw_files(store, RAW, account, day, SUFFIX)


def read_snapshot(store: Store, path: str) -> RawSnapshot:
    """The snapshot stored at `path`, its records streamed lazily; DataError if unreadable."""
    try:
        with store.open_input(path, COMPRESSION) as stream:
            head = _first_line(stream)
        meta = orjson.loads(head)["_snapshot"]
        snapshot = RawSnapshot(
            snapshot_id=str(meta["snapshot_id"]),
            snapshot_at=parse_time(meta["snapshot_at"]),
            account=str(meta["account"]),
            pages=int(meta.get("pages", 0)),
            requests=int(meta.get("requests", 0)),
            retries=int(meta.get("retries", 0)),
            source=str(meta.get("source", "vast")),
            schema_version=int(meta.get("schema_version", SCHEMA_VERSION)),
            client_version=str(meta.get("client_version", "")),
            path=path,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"Raw snapshot file {path} is unreadable ({reason(exc)}).") from None
    return replace(snapshot, records=_FileRecords(store, path))


def _first_line(stream: object) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = stream.read(1 << 16)  # type: ignore[attr-defined]
        if not chunk:
            break
        chunks.append(chunk)
        if b"\n" in chunk:
            break
    return b"".join(chunks).split(b"\n", 1)[0]


class _FileRecords:
    """Re-iterable records of one raw file; each iteration decompresses the file once.

    `body` and `parse` split that in two, so the columnar fast path
    (`pipeline.landing.fastflatten`) can read the NDJSON bytes and the value-by-value path can
    parse the same bytes when the fast path declines, without decompressing twice.
    """

    def __init__(self, store: Store, path: str) -> None:
        self.store = store
        self.path = path

    def __iter__(self) -> Iterator[object]:
        return self.parse(self.body())

    def body(self) -> bytes:
        """The record lines (NDJSON, header line removed) of the file, decompressed."""
        try:
            data = self.store.read_bytes(self.path, COMPRESSION)
        except OSError as exc:
            raise DataError(
                f"Raw snapshot file {self.path} is unreadable ({reason(exc)}).") from None
        _, _, body = data.partition(b"\n")
        return body

    def parse(self, body: bytes) -> Iterator[object]:
        """The records of `body` (from `body()`), parsed one line at a time."""
        lines = body.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        loads = orjson.loads
        for number, line in enumerate(lines, start=2):
            try:
                yield loads(line)
            except orjson.JSONDecodeError:
                raise DataError(
                    f"Raw snapshot file {self.path} is unreadable (line {number} is not JSON)."
                ) from None


def iter_snapshots(
    store: Store,
    account: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    errors: list[DataError] | None = None,
) -> Iterator[RawSnapshot]:
    """Raw snapshots in (account, time) order, filtered by account and inclusive UTC dates.

    An unreadable file raises DataError, or, when `errors` is given, is appended there
    and skipped so one bad file cannot stop a rebuild.
    """
    for acc, day in raw_partitions(store, account, date_from, date_to):
        for path in snapshot_files(store, acc, day).values():
            try:
                yield read_snapshot(store, path)
            except DataError as exc:
                if errors is None:
                    raise
                errors.append(exc)


def raw_partitions(
    store: Store,
    account: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> list[tuple[str, date]]:
    """(account, day) partitions of the raw zone within the filters."""
    wanted = None if account is None else [account]
    return [(acc, day) for acc, day in zone_partitions(store, RAW, wanted, date_from, date_to)
            if acc is not None]  # always: the snapshots are an account's
