"""The market's raw zone: one scrubbed zstd NDJSON file per market snapshot, every
response page as it came, so the Parquet can be re-derived from it (`rebuild`).

    raw_market/snapshot_date=<YYYY-MM-DD>/<20261126T171500.123456Z>_<snapshot_id>.ndjson.zst

The first line is a header `{"_market_snapshot": {...}}` (id, time, requests, retries, what
stayed incomplete, the GPU models and storage asked for, the limit, source, versions); every
further line is one response: `{"offer_type", "request", "response"}`, the offers inside
passed through `pipeline.core.secrets.scrub`. Written atomically: complete or absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import orjson

from pipeline import __version__
from pipeline.core.errors import DataError
from pipeline.core.secrets import scrub
from pipeline.landing import rawzone
from pipeline.market.schema import MARKET_SCHEMA_VERSION
from pipeline.market.search import SearchPage
from pipeline.storage.datasets import RAW_MARKET
from pipeline.storage.store import Store

SUFFIX = ".ndjson.zst"
COMPRESSION = rawzone.COMPRESSION
HEADER_KEY = "_market_snapshot"


@dataclass(frozen=True)
class RawMarketSnapshot:
    """One market snapshot: its responses and how the search went."""

    snapshot_id: str
    snapshot_at: datetime
    pages: list[SearchPage] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    incomplete_reasons: list[str] = field(default_factory=list)
    gpu_names: list[str] = field(default_factory=list)
    allocated_storage_gb: float = 0.0
    limit: int = 0
    source: str = "simulator"
    schema_version: int = MARKET_SCHEMA_VERSION
    client_version: str = __version__
    path: str | None = field(default=None, compare=False)

    @property
    def day(self) -> date:
        return self.snapshot_at.astimezone(UTC).date()

    def header(self) -> dict[str, object]:
        return {
            "snapshot_id": self.snapshot_id,
            "snapshot_at": rawzone.format_time(self.snapshot_at),
            "requests": self.requests,
            "retries": self.retries,
            "incomplete_reasons": list(self.incomplete_reasons),
            "gpu_names": list(self.gpu_names),
            "allocated_storage_gb": self.allocated_storage_gb,
            "limit": self.limit,
            "source": self.source,
            "schema_version": self.schema_version,
            "client_version": self.client_version,
        }


def raw_path(store: Store, snapshot_id: str, snapshot_at: datetime) -> str:
    """Where a market snapshot lives in the raw zone (names sort by time)."""
    return rawzone.raw_file_path(store, RAW_MARKET, None, rawzone.utc(snapshot_at).date(),
                                 snapshot_at, snapshot_id, SUFFIX)


def write_raw(store: Store, snapshot: RawMarketSnapshot) -> str:
    """Scrub and write a market snapshot atomically; returns its path (same id replaces)."""
    path = raw_path(store, snapshot.snapshot_id, snapshot.snapshot_at)
    rawzone.write_ndjson(store, path, HEADER_KEY, snapshot.header(),
                         (_scrubbed(page) for page in snapshot.pages))
    return path


def _scrubbed(page: SearchPage) -> dict[str, object]:
    response = dict(page.response)
    if isinstance(response.get("offers"), list):
        response["offers"] = [scrub(offer) for offer in response["offers"]]
    return {"offer_type": page.offer_type, "request": page.request, "response": response}


def raw_files(store: Store, day: date) -> dict[str, str]:
    """snapshot_id -> path of every raw market file of a day (from names alone)."""
    return rawzone.raw_files(store, RAW_MARKET, None, day, SUFFIX)


def raw_days(store: Store) -> list[date]:
    """The days of the market's raw zone, sorted."""
    return [day for _, day in rawzone.raw_partitions(store, RAW_MARKET)]


def read_raw(store: Store, path: str) -> RawMarketSnapshot:
    """The market snapshot stored at `path`, pages included; DataError if unreadable."""
    try:
        lines = store.read_bytes(path, COMPRESSION).split(b"\n")
        meta = orjson.loads(lines[0])[HEADER_KEY]
        pages = [_page(orjson.loads(line)) for line in lines[1:] if line]
        return RawMarketSnapshot(
            snapshot_id=str(meta["snapshot_id"]),
            snapshot_at=rawzone.parse_time(meta["snapshot_at"]),
            pages=pages,
            requests=int(meta.get("requests", len(pages))),
            retries=int(meta.get("retries", 0)),
            incomplete_reasons=[str(r) for r in meta.get("incomplete_reasons", [])],
            gpu_names=[str(n) for n in meta.get("gpu_names", [])],
            allocated_storage_gb=float(meta.get("allocated_storage_gb", 0.0)),
            limit=int(meta.get("limit", 0)),
            source=str(meta.get("source", "vast")),
            schema_version=int(meta.get("schema_version", MARKET_SCHEMA_VERSION)),
            client_version=str(meta.get("client_version", "")),
            path=path,
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(f"Raw market snapshot file {path} is unreadable "
                        f"({rawzone.reason(exc)}).") from None


def _page(line: object) -> SearchPage:
    if not isinstance(line, dict) or not isinstance(line.get("response"), dict):
        raise ValueError("a response line is not an object with a response")
    return SearchPage(str(line.get("offer_type")), line.get("request") or {}, line["response"])


def iter_raw(store: Store, day: date, skip: set[str] | None = None,
             errors: list[str] | None = None) -> Iterator[RawMarketSnapshot]:
    """A day's raw market snapshots in time order (ids in `skip` left out); an unreadable
    file is listed in `errors` when given, else raised."""
    for snapshot_id, path in raw_files(store, day).items():
        if skip and snapshot_id in skip:
            continue
        try:
            yield read_raw(store, path)
        except DataError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
