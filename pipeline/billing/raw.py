"""The raw zone of the bills: each fetched day of one account as sent (scrubbed).

    raw_charges/account=<a>/day=<YYYY-MM-DD>/<fetched_at>_<fetch_id>.json.zst

One JSON object per file, `{"_fetch": {...header...}, "results": [...]}`, zstd, written
atomically and named by `pipeline.landing.rawzone` as the snapshots are (the names sort
by fetch time, so the newest file of a day is the one landed last). The raw zone is the
source of truth: `rebuild_charges` re-derives the Parquet from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from pipeline import __version__
from pipeline.core.errors import DataError
from pipeline.core.secrets import scrub
from pipeline.landing import rawzone
from pipeline.source.client import DAY_LAST_SECOND
from pipeline.storage.datasets import RAW_CHARGES
from pipeline.storage.schema import SCHEMA_VERSION
from pipeline.storage.store import Store

RAW_SUFFIX = ".json.zst"


@dataclass(frozen=True)
class RawBill:
    """One fetched day of one account: the results as sent (scrubbed) and how they came."""

    account: str
    day: date
    fetch_id: str
    fetched_at: datetime
    results: list
    pages: int = 0
    requests: int = 0
    retries: int = 0
    total_reported: int | None = None
    source: str = "vast"
    schema_version: int = SCHEMA_VERSION
    client_version: str = __version__

    @property
    def window_start(self) -> int:
        return int(datetime(self.day.year, self.day.month, self.day.day,
                            tzinfo=UTC).timestamp())

    @property
    def window_end(self) -> int:
        return self.window_start + DAY_LAST_SECOND

    def header(self) -> dict[str, object]:
        return {
            "fetch_id": self.fetch_id, "fetched_at": rawzone.format_time(self.fetched_at),
            "account": self.account, "day": self.day.isoformat(),
            "window_start": self.window_start, "window_end": self.window_end,
            "pages": self.pages, "requests": self.requests, "retries": self.retries,
            "total_reported": self.total_reported, "source": self.source,
            "schema_version": self.schema_version, "client_version": self.client_version,
        }


def scrubbed(result: Any) -> Any:
    """A result without secrets (none are documented in bills; the rule is the snapshots')."""
    if not isinstance(result, dict):
        return result
    clean = scrub(result)
    if isinstance(clean.get("metadata"), dict):
        clean = {**clean, "metadata": scrub(clean["metadata"])}
    return clean


def raw_bill_path(store: Store, raw: RawBill) -> str:
    """`raw_charges/account=<a>/day=<d>/<fetched_at>_<fetch_id>.json.zst`.

    The day is the bill's, not the fetch time's: a bill of the 1st fetched on the 3rd
    lands in the 1st's partition."""
    return rawzone.raw_file_path(store, RAW_CHARGES, raw.account, raw.day, raw.fetched_at,
                         raw.fetch_id, RAW_SUFFIX)


def write_raw_bill(store: Store, raw: RawBill) -> str:
    """Write the fetched day atomically (one JSON object, zstd); returns its path."""
    body = b'{"_fetch":' + orjson.dumps(raw.header()) + b',"results":['
    body += b",".join(rawzone.dump_json(scrubbed(r)) for r in raw.results) + b"]}\n"
    path = raw_bill_path(store, raw)
    store.write_bytes_atomic(path, body, compression=rawzone.COMPRESSION)
    return path


def raw_bill_files(store: Store, account: str, day: date) -> list[str]:
    """Paths of the raw files of one (account, day), oldest first (names sort by time)."""
    return list(rawzone.raw_files(store, RAW_CHARGES, account, day, RAW_SUFFIX).values())


def read_raw_bill(store: Store, path: str) -> RawBill:
    """The fetched day stored at `path`; DataError if unreadable."""
    try:
        data = orjson.loads(store.read_bytes(path, rawzone.COMPRESSION))
        head = data["_fetch"]
        results = data["results"]
        if not isinstance(results, list):
            raise TypeError("results is not a list")
        return RawBill(
            account=str(head["account"]), day=date.fromisoformat(head["day"]),
            fetch_id=str(head["fetch_id"]), fetched_at=rawzone.parse_time(head["fetched_at"]),
            results=results, pages=int(head.get("pages") or 0),
            requests=int(head.get("requests") or 0), retries=int(head.get("retries") or 0),
            total_reported=head.get("total_reported"), source=str(head.get("source", "vast")),
            schema_version=int(head.get("schema_version", SCHEMA_VERSION)),
            client_version=str(head.get("client_version", "")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise DataError(f"Raw charges file {path} is unreadable ({reason}).") from None


def raw_bill_days(store: Store, accounts: list[str] | None = None,
                  date_from: date | None = None,
                  date_to: date | None = None) -> list[tuple[str, date]]:
    """(account, day) of every raw-charges day within the filters (dates inclusive)."""
    return rawzone.raw_partitions(store, RAW_CHARGES, accounts, date_from, date_to)
