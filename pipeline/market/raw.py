"""The market's raw zone: one scrubbed zstd NDJSON file per market snapshot, every
response page as it came, so the Parquet can be re-derived from it (`rebuild`).

    raw_market/snapshot_date=<YYYY-MM-DD>/<20261126T171500.123456Z>_<snapshot_id>.ndjson.zst

The first line is a header `{"_market_snapshot": {...}}` (id, time, requests, retries, what
stayed incomplete, the GPU models and storage asked for, the limit, source, versions); every
further line is one response: `{"offer_type", "request", "response"}`, the offers inside
passed through `pipeline.core.secrets.scrub`. Written atomically: complete or absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import orjson

from pipeline import __version__
from pipeline.core.errors import DataError
from pipeline.core.secrets import scrub
from pipeline.landing.raw import dump_json, format_time
from pipeline.market.schema import MARKET_SCHEMA_VERSION
from pipeline.market.search import SearchPage
from pipeline.storage.datasets import RAW_MARKET
from pipeline.storage.store import Store

SUFFIX = ".ndjson.zst"
COMPRESSION = "zstd"
_STAMP = "%Y%m%dT%H%M%S.%fZ"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
_NAME_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6}\.\d{6}Z)_(?P<id>[A-Za-z0-9.-]+)\.ndjson\.zst$")
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
            "snapshot_at": format_time(self.snapshot_at),
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
    if not _ID_RE.match(snapshot_id):
        raise ValueError(f"snapshot_id {snapshot_id!r} is not file-name safe")
    moment = snapshot_at.astimezone(UTC)
    name = f"{moment.strftime(_STAMP)}_{snapshot_id}{SUFFIX}"
    return f"{store.partition_dir(RAW_MARKET, None, moment.date())}/{name}"


def write_raw(store: Store, snapshot: RawMarketSnapshot) -> str:
    """Scrub and write a market snapshot atomically; returns its path (same id replaces)."""
    if snapshot.snapshot_at.tzinfo is None:
        raise ValueError("snapshot_at must be timezone-aware (UTC)")
    path = raw_path(store, snapshot.snapshot_id, snapshot.snapshot_at)
    lines = [orjson.dumps({HEADER_KEY: snapshot.header()})]
    lines += [dump_json(_scrubbed(page)) for page in snapshot.pages]
    lines.append(b"")
    store.write_bytes_atomic(path, b"\n".join(lines), compression=COMPRESSION)
    return path


def _scrubbed(page: SearchPage) -> dict[str, object]:
    response = dict(page.response)
    if isinstance(response.get("offers"), list):
        response["offers"] = [scrub(offer) for offer in response["offers"]]
    return {"offer_type": page.offer_type, "request": page.request, "response": response}


def raw_files(store: Store, day: date) -> dict[str, str]:
    """snapshot_id -> path of every raw market file of a day (from names alone)."""
    found: dict[str, str] = {}
    for path in store.list_files(store.partition_dir(RAW_MARKET, None, day), SUFFIX):
        m = _NAME_RE.match(path.rsplit("/", 1)[-1])
        if m:
            found[m["id"]] = path
    return found


def raw_days(store: Store) -> list[date]:
    """The days of the market's raw zone, sorted."""
    return [day for _, day in store.list_partitions(RAW_MARKET)]


def read_raw(store: Store, path: str) -> RawMarketSnapshot:
    """The market snapshot stored at `path`, pages included; DataError if unreadable."""
    try:
        lines = store.read_bytes(path, COMPRESSION).split(b"\n")
        meta = orjson.loads(lines[0])[HEADER_KEY]
        pages = [_page(orjson.loads(line)) for line in lines[1:] if line]
        return RawMarketSnapshot(
            snapshot_id=str(meta["snapshot_id"]),
            snapshot_at=datetime.strptime(meta["snapshot_at"], "%Y-%m-%dT%H:%M:%S.%f%z"),
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
        text = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise DataError(f"Raw market snapshot file {path} is unreadable ({text}).") from None


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
