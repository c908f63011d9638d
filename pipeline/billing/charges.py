"""Billed charges: Vast.ai's real bill of each UTC day, kept raw and as typed Parquet.

Why it works the way it does:
- `GET /api/v0/charges/` answers one row per contract over the requested window, so a
  day's figures need a window of exactly that day (`VastClient.charges_of_day`).
- Bills are historical (a new user gets months on day one) and settle late: fetching a day
  again REPLACES what was stored for that (account, day), it never adds to it.
- A day lands whole or not at all. Every page is listed before anything is written; then,
  under the day's lock, the response goes to the raw zone (scrubbed, atomically) and the
  Parquet files of the `charges` family are rewritten atomically: the new rows beside the
  old ones, then the day log (`billed_days`, the commit record naming the fetch_id whose
  rows count), then without the old rows (a day with no committed bill: its rows, then the
  log; a rebuild of the logged fetch: each file replaced once). A reader keeping only the
  logged fetch's rows sees one whole bill whenever the writer dies. A failed listing leaves
  the stored bill exactly as it was; a writer killed after the raw file leaves it for
  `rebuild_charges` (or the next fetch) to land.
- The raw zone is the source of truth: `rebuild_charges` re-derives the Parquet from the
  newest raw file of each (account, day), byte for byte as the fetch wrote it.

Layout (datasets declared in `pipeline.storage.datasets`):

    raw_charges/account=<a>/day=<YYYY-MM-DD>/<fetched_at>_<fetch_id>.json.zst
    parquet/billed_charges|billed_quarantine|billed_days/account=<a>/day=<YYYY-MM-DD>/part-0.parquet
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import __version__
from pipeline.core import clock
from pipeline.core.config import Account, Settings
from pipeline.core.errors import ConfigError, DataError, PipelineError
from pipeline.core.secrets import scrub
from pipeline.landing.history import PART_FILE, WRITE_OPTIONS
from pipeline.landing.raw import dump_json, format_time
from pipeline.source.client import DAY_LAST_SECOND, ChargesListing, VastClient
from pipeline.source.collect import client_for, raise_for_failures
from pipeline.storage.datasets import CHARGE_FAMILY, RAW_CHARGES, family
from pipeline.storage.schema import (
    BILLED_CHARGE_SCHEMA,
    BILLED_DAY_SCHEMA,
    BILLED_QUARANTINE_SCHEMA,
    SCHEMA_VERSION,
)
from pipeline.storage.store import Store, check_account

RAW_SUFFIX = ".json.zst"
COMPRESSION = "zstd"
_STAMP = "%Y%m%dT%H%M%S.%fZ"
_NAME_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6}\.\d{6}Z)_(?P<id>[A-Za-z0-9.-]+)\.json\.zst$")
_SOURCE_RE = re.compile(r"^(?P<kind>[A-Za-z_]+)-(?P<id>\d{1,18})$")
# "96.000 hours at $0.389/hour", "1,024.5 GB at $0.01/GB"
_RATE_RE = re.compile(r"^\s*(?P<q>\d[\d,]*(?:\.\d+)?)\s+(?P<unit>[A-Za-z]+)\s+at\s+"
                      r"\$(?P<price>\d[\d,]*(?:\.\d+)?)\s*/\s*[A-Za-z]+\b")
# "12.5 GB downloaded"
_QUANTITY_RE = re.compile(r"^\s*(?P<q>\d[\d,]*(?:\.\d+)?)\s*(?P<unit>[A-Za-z]+)\b")
RESIDUAL_TYPE = "other"
RESIDUAL_DESCRIPTION = "contract amount not covered by its items"
DEFAULT_DAYS_BACK = 3  # bills settle late: refetch today and the two days before
_EPOCH_MAX = 253402300799  # 9999-12-31T23:59:59Z
_SCHEMAS: dict[str, pa.Schema] = {d.name: d.schema for d in family(CHARGE_FAMILY)}
_SORT_KEYS: dict[str, list[tuple[str, str]]] = {
    d.name: list(d.sort_keys) for d in family(CHARGE_FAMILY)
}
# The snapshots' compression and sizes, with the charge family's own encodings: its text
# columns repeat (one fetch_id, a few types and units per file), so they get dictionaries.
BILL_WRITE_OPTIONS: dict[str, object] = {
    **WRITE_OPTIONS,
    "use_dictionary": sorted({f.name for s in _SCHEMAS.values() for f in s
                              if pa.types.is_string(f.type)}),
    "use_byte_stream_split": False,
}

Progress = Callable[["BillDayResult"], None]
ClientFactory = Callable[[Account, Settings], AbstractContextManager[VastClient]]


# -- results -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BillDayResult:
    """What fetching (or rebuilding) one account's day did, for the CLI, Dagster and tests."""

    account: str
    day: date
    fetch_id: str
    contracts: int
    items: int                     # rows landed in billed_charges (residual rows included)
    total: float                   # $ billed that day: the sum of the contracts' amounts
    previous_total: float | None   # what was stored before (None: the day is new)
    pages: int
    requests: int
    retries: int
    quarantined: int               # rows landed in billed_quarantine
    raw_path: str = ""

    def change_line(self) -> str:
        """`2026-11-01: $1,050.48 -> $1,051.71`, `... new $x` or `... unchanged $x`."""
        if self.previous_total is None:
            return f"{self.day}: new {_usd(self.total)}"
        if round(self.previous_total, 3) == round(self.total, 3):
            return f"{self.day}: unchanged {_usd(self.total)}"
        before, after = _usd(self.previous_total), _usd(self.total)
        if before == after:  # a sub-cent settlement: show the mills that changed
            before, after = _usd(self.previous_total, 3), _usd(self.total, 3)
        return f"{self.day}: {before} -> {after}"


def _usd(amount: float, decimals: int = 2) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.{decimals}f}"


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
            "fetch_id": self.fetch_id, "fetched_at": format_time(self.fetched_at),
            "account": self.account, "day": self.day.isoformat(),
            "window_start": self.window_start, "window_end": self.window_end,
            "pages": self.pages, "requests": self.requests, "retries": self.retries,
            "total_reported": self.total_reported, "source": self.source,
            "schema_version": self.schema_version, "client_version": self.client_version,
        }


@dataclass
class FlatBill:
    """A day's bill as the three Parquet tables of the `charges` family."""

    charges: pa.Table
    quarantine: pa.Table
    log: pa.Table
    contracts: int
    total: float

    @property
    def tables(self) -> dict[str, pa.Table]:
        return {"billed_charges": self.charges, "billed_quarantine": self.quarantine,
                "billed_days": self.log}


@dataclass
class ChargesRebuild:
    """`rebuild_charges`'s outcome."""

    days: list[BillDayResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)           # unreadable raw files
    orphan_days: list[tuple[str, date]] = field(default_factory=list)  # Parquet, no raw

    def summary(self) -> str:
        total = sum(d.total for d in self.days)
        text = (f"Rebuilt {len(self.days)} billed days from raw charges "
                f"({sum(d.contracts for d in self.days)} contracts, {_usd(total)}).")
        if self.errors:
            text += f" Left {len(self.errors)} days as they were: " + " ".join(self.errors)
        if self.orphan_days:
            days = ", ".join(f"{a}/{d}" for a, d in self.orphan_days)
            text += f" Left alone {len(self.orphan_days)} billed days without raw: {days}."
        return text


# -- fetching ------------------------------------------------------------------------------
def fetch_day(client: VastClient, store: Store, account: str, day: date, *,
              source: str = "vast") -> BillDayResult:
    """Fetch one UTC day's bill of `account` and replace what was stored for that day.

    Every page is listed before anything is written, so a failed listing leaves the
    stored bill exactly as it was.
    """
    check_account(account)
    listing = client.charges_of_day(day)

    def land() -> BillDayResult:  # retried whole if an object-store write lost a race
        # Stamped under the lock, so the newest raw file of a day is the one landed last.
        raw = _raw_bill(account, day, listing, source, datetime.now(UTC))
        previous = stored_day_total(store, account, day)
        flat = flatten_bill(raw)
        path = write_raw_bill(store, raw)
        _write_bill(store, account, day, flat)
        return _result(raw, flat, previous, path)

    return store.run_locked(account, day, land)


def _raw_bill(account: str, day: date, listing: ChargesListing, source: str,
              fetched_at: datetime) -> RawBill:
    return RawBill(account=account, day=day, fetch_id=uuid.uuid4().hex, fetched_at=fetched_at,
                   results=[_scrubbed(r) for r in listing.results], pages=listing.pages,
                   requests=listing.requests, retries=listing.retries,
                   total_reported=listing.total_reported, source=source)


def _scrubbed(result: Any) -> Any:
    """A result without secrets (none are documented in bills; the rule is the snapshots')."""
    if not isinstance(result, dict):
        return result
    clean = scrub(result)
    if isinstance(clean.get("metadata"), dict):
        clean = {**clean, "metadata": scrub(clean["metadata"])}
    return clean


def _result(raw: RawBill, flat: FlatBill, previous: float | None,
            path: str) -> BillDayResult:
    return BillDayResult(
        account=raw.account, day=raw.day, fetch_id=raw.fetch_id, contracts=flat.contracts,
        items=flat.charges.num_rows, total=flat.total, previous_total=previous,
        pages=raw.pages, requests=raw.requests, retries=raw.retries,
        quarantined=flat.quarantine.num_rows, raw_path=path)


def collect_charges(settings: Settings, days: list[date], account: str | None = None,
                    progress: Progress | None = None, *,
                    clients: ClientFactory | None = None,
                    today: date | None = None) -> list[BillDayResult]:
    """Fetch the bill of each day for each configured account (or only `account`).

    Days go one at a time, in the order given; `progress` is called after each landed
    day. A failure stops that account at the failing day (days before it stay landed, the
    failing one keeps its old bill); the other accounts are still fetched, then the
    failures are raised together. `clients` opens a client per account (default: the
    account's API, or the embedded simulator when no key is set). `today`: the UTC day of
    the caller's clock (default `pipeline.core.clock.today()`), after which no bill exists yet.
    """
    check_days(days, today)
    accounts = [settings.account(account)] if account else list(settings.accounts)
    open_client = clients or client_for
    store = Store(settings.home)
    results: list[BillDayResult] = []
    failures: list[tuple[str, PipelineError]] = []
    for acc in accounts:
        try:
            with open_client(acc, settings) as client:
                for day in days:
                    result = fetch_day(client, store, acc.name, day, source=acc.source)
                    results.append(result)
                    if progress is not None:
                        progress(result)
        except PipelineError as exc:
            failures.append((acc.name, exc))
    raise_for_failures(failures, len(accounts))
    return results


def check_days(days: list[date], today: date | None = None) -> None:
    """Refuse a day after today (UTC, default `pipeline.core.clock.today()`): its bill cannot
    exist yet."""
    today = today or clock.today()
    future = [d for d in days if d > today]
    if future:
        raise ConfigError(f"{min(future)} is in the future (today is {today} UTC): bills "
                          "exist only for days that have begun; pick an earlier --to.")


def day_range(first: date, last: date) -> list[date]:
    """Every UTC day from `first` to `last`, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# -- the raw zone ------------------------------------------------------------------------
def raw_bill_path(store: Store, raw: RawBill) -> str:
    """`raw_charges/account=<a>/day=<d>/<fetched_at>_<fetch_id>.json.zst`."""
    stamp = raw.fetched_at.astimezone(UTC).strftime(_STAMP)
    directory = store.partition_dir(RAW_CHARGES, raw.account, raw.day)
    return f"{directory}/{stamp}_{raw.fetch_id}{RAW_SUFFIX}"


def write_raw_bill(store: Store, raw: RawBill) -> str:
    """Write the fetched day atomically (one JSON object, zstd); returns its path."""
    body = b'{"_fetch":' + orjson.dumps(raw.header()) + b',"results":['
    body += b",".join(dump_json(_scrubbed(r)) for r in raw.results) + b"]}\n"
    path = raw_bill_path(store, raw)
    store.write_bytes_atomic(path, body, compression=COMPRESSION)
    return path


def raw_bill_files(store: Store, account: str, day: date) -> list[str]:
    """Paths of the raw files of one (account, day), oldest first (names sort by time)."""
    directory = store.partition_dir(RAW_CHARGES, account, day)
    return [p for p in store.list_files(directory, RAW_SUFFIX)
            if _NAME_RE.match(p.rsplit("/", 1)[-1])]


def read_raw_bill(store: Store, path: str) -> RawBill:
    """The fetched day stored at `path`; DataError if unreadable."""
    try:
        data = orjson.loads(store.read_bytes(path, COMPRESSION))
        head = data["_fetch"]
        results = data["results"]
        if not isinstance(results, list):
            raise TypeError("results is not a list")
        return RawBill(
            account=str(head["account"]), day=date.fromisoformat(head["day"]),
            fetch_id=str(head["fetch_id"]),
            fetched_at=datetime.strptime(head["fetched_at"], "%Y-%m-%dT%H:%M:%S.%f%z"),
            results=results, pages=int(head.get("pages") or 0),
            requests=int(head.get("requests") or 0), retries=int(head.get("retries") or 0),
            total_reported=head.get("total_reported"), source=str(head.get("source", "vast")),
            schema_version=int(head.get("schema_version", SCHEMA_VERSION)),
            client_version=str(head.get("client_version", "")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise DataError(f"Raw charges file {path} is unreadable ({reason}).") from None


# -- flattening ----------------------------------------------------------------------------
def flatten_bill(raw: RawBill) -> FlatBill:
    """The day's bill as typed tables; what cannot be typed goes to quarantine with a reason.

    One row per contract per item; a contract whose items do not add up to its amount
    (to 3 decimals), or that has none, gets one more row of item_type `other` with the
    remainder, so a day's rows always sum to its bill. Never raises on bad input.
    """
    flat = _Flattener(raw.fetch_id, raw.fetched_at)
    for result in raw.results:
        flat.add(result)
    charges = pa.Table.from_pylist(flat.rows, schema=BILLED_CHARGE_SCHEMA)
    quarantine = pa.Table.from_pylist(flat.quarantine, schema=BILLED_QUARANTINE_SCHEMA)
    total = round(flat.total, 3)
    log = pa.Table.from_pylist([{
        "fetch_id": raw.fetch_id, "fetched_at": raw.fetched_at,
        "window_start": datetime.fromtimestamp(raw.window_start, UTC),
        "window_end": datetime.fromtimestamp(raw.window_end, UTC),
        "contracts": flat.contracts, "items": charges.num_rows, "total_amount": total,
        "pages": raw.pages, "quarantined": quarantine.num_rows,
        "schema_version": SCHEMA_VERSION,
    }], schema=BILLED_DAY_SCHEMA)
    return FlatBill(charges, quarantine, log, flat.contracts, total)


class _Flattener:
    """Accumulates the rows of one day; every rejection is a quarantine row with a reason."""

    def __init__(self, fetch_id: str, fetched_at: datetime) -> None:
        self.fetch_id = fetch_id
        self.fetched_at = fetched_at
        self.rows: list[dict[str, Any]] = []
        self.quarantine: list[dict[str, Any]] = []
        self.contracts = 0
        self.total = 0.0

    def reject(self, source: str | None, field_name: str | None, value: Any,
               reason: str) -> None:
        self.quarantine.append({
            "fetch_id": self.fetch_id, "fetched_at": self.fetched_at, "source": source,
            "field": field_name, "original_value": _json_text(value), "reason": reason})

    def add(self, result: Any) -> None:
        if not isinstance(result, dict):
            self.reject(None, None, result, "the result is not a JSON object")
            return
        source = result.get("source") if isinstance(result.get("source"), str) else None
        kind = result.get("type")
        if not isinstance(kind, str) or not kind.strip():
            self.reject(source, None, result, "the result has no contract type")
            return
        amount = _money(result.get("amount"))
        if amount is None:
            self.reject(source, None, result, "the contract amount is missing or not a number")
            return
        contract = self._contract(result, kind.strip(), source, amount)
        items = self._items(result, contract, source)
        self.contracts += 1
        self.total += amount
        self.rows += items
        residual = round(amount - sum(r["amount"] for r in items), 3)
        if residual != 0 or not items:
            self.rows.append({**contract, "item_type": RESIDUAL_TYPE,
                              "item_start": contract["contract_start"],
                              "item_end": contract["contract_end"],
                              "item_description": RESIDUAL_DESCRIPTION, "amount": residual,
                              "quantity": None, "quantity_unit": None, "unit_price": None})

    def _contract(self, result: dict, kind: str, source: str | None,
                  amount: float) -> dict[str, Any]:
        """The contract-level columns shared by every row of this contract."""
        if result.get("source") is not None and source is None:
            self.reject(None, "source", result.get("source"), "source is not text")
        contract_id = None
        if source is not None:
            match = _SOURCE_RE.match(source)
            if match:
                contract_id = int(match["id"])
            else:
                self.reject(source, "source", source, "source is not '<type>-<number>'")
        metadata = result.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            self.reject(source, "metadata", metadata, "metadata is not a JSON object")
            metadata = None
        meta = metadata or {}
        return {
            "fetch_id": self.fetch_id, "fetched_at": self.fetched_at, "contract_type": kind,
            "source": source, "contract_id": contract_id,
            "instance_id": contract_id if kind == "instance" else None,
            "label": self._text(meta, "label", source, "metadata.label"),
            "template_id": self._integer(meta, "template_id", source),
            "contract_description": self._text(result, "description", source, "description"),
            "contract_start": self._time(result, "start", source, "start"),
            "contract_end": self._time(result, "end", source, "end"),
            "contract_amount": amount,
            "metadata": _json_text(metadata) if metadata else None,
        }

    def _items(self, result: dict, contract: dict, source: str | None) -> list[dict]:
        items = result.get("items")
        if items is None:
            return []
        if not isinstance(items, list):
            self.reject(source, "items", items, "items is not a JSON array")
            return []
        rows = []
        for index, item in enumerate(items):
            where = f"items[{index}]"
            if not isinstance(item, dict):
                self.reject(source, where, item, "the item is not a JSON object")
                continue
            kind = item.get("type")
            amount = _money(item.get("amount"))
            if not isinstance(kind, str) or not kind.strip():
                self.reject(source, f"{where}.type", item, "the item has no type")
                continue
            if amount is None:
                self.reject(source, f"{where}.amount", item,
                            "the item amount is missing or not a number")
                continue
            description = self._text(item, "description", source, f"{where}.description")
            quantity, unit, price = parse_description(description)
            rows.append({**contract, "item_type": kind.strip(),
                         "item_start": self._time(item, "start", source, f"{where}.start"),
                         "item_end": self._time(item, "end", source, f"{where}.end"),
                         "item_description": description, "amount": amount,
                         "quantity": quantity, "quantity_unit": unit, "unit_price": price})
        return rows

    def _text(self, obj: dict, key: str, source: str | None, where: str) -> str | None:
        value = obj.get(key)
        if value is None or isinstance(value, str):
            return value
        self.reject(source, where, value, f"{key} is not text")
        return None

    def _integer(self, obj: dict, key: str, source: str | None) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        number = _integral(value)
        if number is None:
            self.reject(source, f"metadata.{key}", value, f"{key} is not an integer")
        return number

    def _time(self, obj: dict, key: str, source: str | None, where: str) -> datetime | None:
        value = obj.get(key)
        if value is None:
            return None
        seconds = _money(value)
        if seconds is None or not 0 <= seconds <= _EPOCH_MAX:
            self.reject(source, where, value, f"{key} is not epoch seconds")
            return None
        return datetime.fromtimestamp(seconds, UTC)


def parse_description(text: str | None) -> tuple[float | None, str | None, float | None]:
    """(quantity, unit, unit price) from an item description; NULLs where it does not say.

    "96.000 hours at $0.389/hour" -> (96.0, "hours", 0.389); "12.5 GB downloaded" ->
    (12.5, "GB", None); anything else -> (None, None, None).
    """
    if not text:
        return None, None, None
    match = _RATE_RE.match(text)
    if match:
        return _number(match["q"]), match["unit"], _number(match["price"])
    match = _QUANTITY_RE.match(text)
    if match:
        return _number(match["q"]), match["unit"], None
    return None, None, None


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _money(value: Any) -> float | None:
    """A finite number (a numeric string too: lossless), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _integral(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    number = _money(value)
    if number is None or not number.is_integer() or abs(number) >= 2**63:
        return None
    return int(number)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return dump_json(value).decode()


# -- the Parquet files of a day ----------------------------------------------------------
def _write_bill(store: Store, account: str, day: date, flat: FlatBill) -> None:
    """Replace the day's bill so that a reader joining on the log's fetch_id always sees
    one whole bill, whenever the writer dies; the caller holds the day's lock.

    When another fetch's bill is committed:
    1. the new rows are written beside the committed ones (a kill here: the log still
       names the old fetch, whose rows are all there);
    2. the log (the commit record) names the new fetch;
    3. the old rows are dropped (a kill before this leaves rows the log does not name,
       which readers skip and the next fetch or rebuild removes).
    When nothing is committed (never fetched, unreadable log) the rows go first and the
    log last: a kill in between leaves rows no log names, never a total without its rows.
    When the log already names this fetch (a rebuild of the landed raw file), step 1 would
    put each row there twice under the logged id: the files are replaced directly instead.
    """
    committed = _committed_tables(store, account, day, flat.log["fetch_id"][0].as_py())
    rows = {name: flat.tables[name] for name in ("billed_charges", "billed_quarantine")}
    if committed is None:
        _write_tables(store, account, day, rows)
        _write_tables(store, account, day, {"billed_days": flat.log})
        return
    beside = {name: pa.concat_tables([committed[name], rows[name]]) for name in committed}
    _write_tables(store, account, day, beside)
    _write_tables(store, account, day, {"billed_days": flat.log})
    _write_tables(store, account, day, rows)


def _write_tables(store: Store, account: str, day: date, tables: dict[str, pa.Table]) -> None:
    """Atomically rewrite each given dataset's day file, sorted, in the family's order."""
    for dataset, schema in _SCHEMAS.items():
        if dataset not in tables:
            continue
        directory = store.partition_dir(dataset, account, day)
        store.remove_stray_temps(directory)  # we hold the day's lock: no live writer here
        table = tables[dataset].cast(schema).sort_by(_SORT_KEYS[dataset]).combine_chunks()
        table = table.replace_schema_metadata(schema.metadata)
        store.write_parquet_atomic(f"{directory}/{PART_FILE}", table, **BILL_WRITE_OPTIONS)


def _committed_tables(store: Store, account: str, day: date,
                      fetch_id: str) -> dict[str, pa.Table] | None:
    """The rows of the day's logged fetch (charges and quarantine), or None if there are
    none to keep beside `fetch_id`'s: never fetched, files unreadable (then they are
    replaced), or the log already names `fetch_id` (its rows are the new ones)."""
    log = stored_day_log(store, account, day)
    if log is None or log["fetch_id"] == fetch_id:
        return None
    out = {}
    for name in ("billed_charges", "billed_quarantine"):
        path = f"{store.partition_dir(name, account, day)}/{PART_FILE}"
        try:
            table = store.read_parquet(path) if store.exists(path) else None
        except (OSError, pa.ArrowException):
            return None
        if table is None or not table.schema.equals(_SCHEMAS[name], check_metadata=False):
            return None
        out[name] = table.filter(pc.equal(table["fetch_id"], log["fetch_id"]))
    return out


def stored_day_log(store: Store, account: str, day: date) -> dict[str, Any] | None:
    """The `billed_days` row of a stored day, or None when the day was never fetched."""
    path = f"{store.partition_dir('billed_days', account, day)}/{PART_FILE}"
    if not store.exists(path):
        return None
    try:
        rows = store.read_parquet(path).to_pylist()
    except (OSError, pa.ArrowException):
        return None
    return rows[-1] if rows else None


def stored_day_total(store: Store, account: str, day: date) -> float | None:
    """$ billed on a stored day (None when never fetched)."""
    log = stored_day_log(store, account, day)
    return None if log is None else log["total_amount"]


def stored_bill(store: Store, account: str, day: date) -> pa.Table:
    """The committed `billed_charges` rows of a day: those of the logged fetch only.

    Rows of another fetch_id are those of a fetch killed before or after its log was
    written (see `_write_bill`); readers must skip them, as this does.
    """
    log = stored_day_log(store, account, day)
    path = f"{store.partition_dir('billed_charges', account, day)}/{PART_FILE}"
    if log is None or not store.exists(path):
        return BILLED_CHARGE_SCHEMA.empty_table()
    table = store.read_parquet(path)
    return table.filter(pc.equal(table["fetch_id"], log["fetch_id"]))


def newest_bills(store: Store) -> dict[str, dict[str, Any]]:
    """account -> its newest stored day's `billed_days` row plus `day` (for `status`)."""
    newest: dict[str, date] = {}
    for account, day in store.list_partitions("billed_days"):
        newest[account] = max(day, newest.get(account, day))
    out = {}
    for account, day in sorted(newest.items()):
        log = stored_day_log(store, account, day)
        if log is not None:
            out[account] = {**log, "day": day}
    return out


# -- rebuilding from raw -----------------------------------------------------------------
def rebuild_charges(store: Store, *, date_from: date | None = None, date_to: date | None = None,
                    accounts: list[str] | None = None,
                    progress: Callable[[int], None] | None = None) -> ChargesRebuild:
    """Re-derive the billed Parquet of every raw-charges day in the window (no API call).

    The newest raw file of each (account, day) wins; a day whose newest raw file is
    unreadable is left as it is and named in `errors`. Running it twice changes nothing.
    """
    wanted = set(accounts) if accounts is not None else None
    outcome = ChargesRebuild()
    days = raw_bill_days(store, accounts, date_from, date_to)
    for account, day in days:
        files = raw_bill_files(store, account, day)
        if files:
            try:
                raw = read_raw_bill(store, files[-1])
                if (raw.account, raw.day) != (account, day):
                    raise DataError(f"Raw charges file {files[-1]} belongs to {raw.account} on "
                                    f"{raw.day}, not to this partition.")
                outcome.days.append(rebuild_bill_day(store, raw))
            except DataError as exc:
                outcome.errors.append(str(exc))
        if progress is not None:
            progress(1)
    rebuilt = {(d.account, d.day) for d in outcome.days}
    billed = {(a, d) for a, d in store.list_partitions("billed_days")
              if _in_window(a, d, wanted, date_from, date_to)}
    outcome.orphan_days = sorted(billed - rebuilt - {(a, d) for a, d in days})
    return outcome


def raw_bill_days(store: Store, accounts: list[str] | None = None,
                  date_from: date | None = None,
                  date_to: date | None = None) -> list[tuple[str, date]]:
    """(account, day) of every raw-charges day within the filters (dates inclusive)."""
    wanted = set(accounts) if accounts is not None else None
    return [(a, d) for a, d in store.list_partitions(RAW_CHARGES)
            if _in_window(a, d, wanted, date_from, date_to)]


def rebuild_bill_day(store: Store, raw: RawBill) -> BillDayResult:
    """Land one raw file as its day's bill (replacing what was stored)."""
    def land() -> BillDayResult:  # retried whole if an object-store write lost a race
        previous = stored_day_total(store, raw.account, raw.day)
        flat = flatten_bill(raw)
        _write_bill(store, raw.account, raw.day, flat)
        return _result(raw, flat, previous, raw_bill_path(store, raw))

    return store.run_locked(raw.account, raw.day, land)


def _in_window(account: str, day: date, wanted: set[str] | None, date_from: date | None,
               date_to: date | None) -> bool:
    return ((wanted is None or account in wanted) and (date_from is None or day >= date_from)
            and (date_to is None or day <= date_to))

