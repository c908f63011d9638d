"""The market's Parquet history: one file per dataset and UTC day, the commit log last.

The same rules as the instance history (`pipeline.landing.history`): every write of a day
happens under that day's lock and is atomic per file (`Store.write_parquet_atomic`); the
snapshot log `market_snapshots` is written last and is the commit record, so rows of a
snapshot missing from it (a killed writer's) are dropped and its raw file lands at the next
`land_market_pending` of the day. Output is deterministic (sorted rows, sorted JSON keys,
fixed writer options): `rebuild_market` writes byte-identical files from the raw zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.market.flatten import MarketFlat, flatten_market
from pipeline.market.raw import RawMarketSnapshot, iter_raw, raw_days
from pipeline.market.schema import MARKET_SCHEMA_VERSION, MARKET_SNAPSHOT_LOG_SCHEMA
from pipeline.storage.datasets import MARKET_FAMILY, family
from pipeline.storage.dayfiles import DayFamily, StaleDayFile, in_order
from pipeline.storage.schema import TIMESTAMP
from pipeline.storage.store import Store

MARKET_OFFERS, MARKET_QUARANTINE, MARKET_SNAPSHOTS = "market_offers", "market_quarantine", \
    "market_snapshots"
# The registry's family: write order (the commit log last), schemas, sort orders.
DAY_FILES = DayFamily(MARKET_FAMILY, {
    # Level 3, not the instance history's 7: a day of hourly market snapshots is ~120k
    # rows of 100 columns rewritten every hour, and level 7 took 0.87 s of it against
    # 0.38 s for 2% more bytes (benchmark day of 23 snapshots of 5,000 offers).
    "compression_level": 3,
    "use_dictionary": sorted(
        (f"{f.name}.list.element" if pa.types.is_list(f.type) else f.name)
        for d in family(MARKET_FAMILY) for f in d.schema if not pa.types.is_floating(f.type)
    ),
}, keep_chunks=True)  # not combined into one chunk: copying a day of offers cost 0.3 s an hour
FAMILY: tuple[str, ...] = tuple(d.name for d in DAY_FILES.members)
SCHEMAS: dict[str, pa.Schema] = DAY_FILES.schemas


@dataclass
class MarketDayResult:
    """What one write of a market day did; counts cover the snapshots flattened now."""

    day: date
    snapshots: int = 0
    offers: int = 0
    quarantined_records: int = 0
    quarantined_values: int = 0
    incomplete: int = 0
    new_fields: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    rebuilt: bool = False
    snapshot_ids: list[str] = field(default_factory=list)

    def add(self, snapshot: RawMarketSnapshot, flat: MarketFlat) -> None:
        self.snapshots += 1
        self.snapshot_ids.append(snapshot.snapshot_id)
        self.offers += flat.offers.num_rows
        self.quarantined_records += flat.quarantined_records
        self.quarantined_values += flat.quarantined_values
        self.incomplete += bool(snapshot.incomplete_reasons)
        self.new_fields |= flat.new_fields


def day_path(store: Store, dataset: str, day: date) -> str:
    return DAY_FILES.path(store, dataset, None, day)


def land_market_pending(store: Store, day: date) -> MarketDayResult:
    """Land the day's raw market snapshots its Parquet does not hold yet (a killed earlier
    landing heals here too); a day with nothing new is not rewritten."""
    return store.run_locked(None, day, lambda: _land(store, day, whole=False))


def rebuild_market_day(store: Store, day: date) -> MarketDayResult:
    """Re-derive one market day from the raw zone (never calls the API)."""
    return store.run_locked(None, day, lambda: _land(store, day, whole=True))


def rebuild_market(store: Store, *, date_from: date | None = None,
                   date_to: date | None = None,
                   progress: Callable[[int], None] | None = None) -> list[MarketDayResult]:
    """Re-derive every market day in the window from raw; `progress` gets snapshots done."""
    results = []
    for day in raw_days(store):
        if (date_from and day < date_from) or (date_to and day > date_to):
            continue
        results.append(rebuild_market_day(store, day))
        if progress is not None:
            progress(results[-1].snapshots + len(results[-1].errors))
    return results


def _land(store: Store, day: date, *, whole: bool) -> MarketDayResult:
    """Under the day's lock: keep committed rows (unless `whole`), add the raw snapshots
    missing from the log, rewrite the family (the log last)."""
    result = MarketDayResult(day=day, rebuilt=whole)
    existing = None if whole else _read_or_none(store, day)
    if existing is None:
        parts: dict[str, list[pa.Table]] = {name: [] for name in FAMILY}
        logged: set[str] = set()
        result.rebuilt = True
    else:
        logged = set(existing[MARKET_SNAPSHOTS].column("snapshot_id").to_pylist())
        parts = _keep_committed(existing, logged)
    for snapshot in iter_raw(store, day, skip=logged, errors=result.errors):
        if snapshot.day != day:
            result.errors.append(f"Raw market snapshot file {snapshot.path} belongs to "
                                 f"{snapshot.day}, not to this day; it was skipped.")
            continue
        flat = flatten_market(snapshot)
        parts[MARKET_OFFERS].append(flat.offers)
        parts[MARKET_QUARANTINE].append(flat.quarantine)
        parts[MARKET_SNAPSHOTS].append(log_row(snapshot, flat))
        result.add(snapshot, flat)
    if result.snapshots or (whole and _has_parquet(store, day)):
        _write_day(store, day, parts)
    return result


def _has_parquet(store: Store, day: date) -> bool:
    return any(store.exists(day_path(store, name, day)) for name in FAMILY)


def _read_or_none(store: Store, day: date) -> dict[str, pa.Table] | None:
    """The day's tables (empty where a file is missing); None when one is stale."""
    tables: dict[str, pa.Table] = {}
    for name, schema in SCHEMAS.items():
        try:
            table = DAY_FILES.read(store, name, None, day)
        except StaleDayFile:
            return None
        tables[name] = schema.empty_table() if table is None else table
    return tables


def _keep_committed(tables: dict[str, pa.Table], logged: set[str]) -> dict[str, list[pa.Table]]:
    """The rows of the snapshots in the log (a killed writer's others dropped); a table
    holding only those is kept as it is, not copied."""
    keep = pa.array(sorted(logged), pa.string())
    parts: dict[str, list[pa.Table]] = {}
    for name, table in tables.items():
        ids = set(pc.unique(table.column("snapshot_id")).to_pylist())
        parts[name] = [table if ids <= logged else
                       table.filter(pc.is_in(table.column("snapshot_id"), value_set=keep))]
    return parts


def _write_day(store: Store, day: date, parts: dict[str, list[pa.Table]]) -> None:
    """Atomically rewrite the day's three files, sorted, the commit log last."""
    tables = {}
    for name, schema in SCHEMAS.items():
        keys = list(DAY_FILES.sort_keys(name))
        pieces = [in_order(part, keys) for part in parts[name]]
        tables[name] = pa.concat_tables(pieces) if pieces else schema.empty_table()
    DAY_FILES.write(store, None, day, tables)


def log_row(snapshot: RawMarketSnapshot, flat: MarketFlat) -> pa.Table:
    """The snapshot's row of `market_snapshots` (how many requests and offers it took,
    whether a search stayed cut off; the reasons are in the raw file's header)."""
    return pa.table({
        "snapshot_id": pa.array([snapshot.snapshot_id], pa.string()),
        "snapshot_at": pa.array([snapshot.snapshot_at], TIMESTAMP),
        "requests": pa.array([snapshot.requests], pa.int64()),
        "offers": pa.array([flat.offers.num_rows], pa.int64()),
        "incomplete": pa.array([bool(snapshot.incomplete_reasons)], pa.bool_()),
        "gpu_names": pa.array([sorted(snapshot.gpu_names)], pa.list_(pa.string())),
        "allocated_storage_gb": pa.array([snapshot.allocated_storage_gb], pa.float64()),
        "quarantined_records": pa.array([flat.quarantined_records], pa.int64()),
        "quarantined_values": pa.array([flat.quarantined_values], pa.int64()),
        "new_fields": pa.array([sorted(flat.new_fields)], pa.list_(pa.string())),
        "schema_version": pa.array([MARKET_SCHEMA_VERSION], pa.int32()),
    }, schema=MARKET_SNAPSHOT_LOG_SCHEMA)


def newest_market_snapshot(store: Store) -> dict[str, object] | None:
    """The newest row of `market_snapshots` (for `status`), reading its newest day only."""
    for day in reversed([day for _, day in store.list_partitions(MARKET_SNAPSHOTS)]):
        path = day_path(store, MARKET_SNAPSHOTS, day)
        rows = store.read_parquet(path).to_pylist() if store.exists(path) else []
        if rows:
            return max(rows, key=lambda r: r["snapshot_at"])
    return None

