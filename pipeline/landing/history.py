"""The Parquet history: hive-partitioned, one file per dataset per account and UTC day.

    parquet/instance_snapshots/account=<a>/snapshot_date=<d>/part-0.parquet  (SNAPSHOT_SCHEMA)
    parquet/snapshots/...        the snapshot log, one row per snapshot (SNAPSHOT_LOG_SCHEMA)
    parquet/quarantine/...       values and records that could not be typed (QUARANTINE_SCHEMA)

Why one file per day, rewritten: a day of 15-minute snapshots stays one file (no small-file
problem, no compaction job), rows sorted by (id, snapshot_at) compress to a few dozen bytes,
and landing a snapshot costs one day's rewrite whatever the size of the history.

Every write of an (account, day) happens under that day's lock and is atomic per file
(temp file + rename, or one conditional PUT on an object store, see `pipeline.storage.store`).
The snapshot log is written last and is the commit record: rows of a snapshot missing
from the log are left-overs of a killed writer and are dropped; raw snapshots of the day
missing from the log are landed by the next `land_pending` of that day. So a kill -9 at
any moment leaves readable files, and the next landing or a `rebuild` heals the day.
Output is deterministic (sorted rows, sorted JSON keys, fixed writer options): rebuilding
twice writes byte-identical files.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import repeat

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.errors import DataError
from pipeline.landing import fastflatten
from pipeline.landing.flatten import FlattenResult, flatten
from pipeline.landing.raw import RawSnapshot, raw_partitions, read_snapshot, snapshot_files
from pipeline.landing.rawzone import left_alone
from pipeline.storage.datasets import SNAPSHOT_FAMILY, family
from pipeline.storage.dayfiles import DayFamily, StaleDayFile
from pipeline.storage.schema import (
    SCHEMA_VERSION,
    SNAPSHOT_LOG_SCHEMA,
    TIMESTAMP,
)
from pipeline.storage.store import Store

# Float columns that move a little at every snapshot (counters, usage gauges): sorted by
# (id, time) their neighbours share sign, exponent and top mantissa bytes, which
# BYTE_STREAM_SPLIT lays out for zstd; a dictionary cannot help values that never repeat.
# With zstd level 7, measured on a benchmark day: 41.5 -> 32.9 bytes per row (README).
SPLIT_FLOAT_COLUMNS: tuple[str, ...] = (
    "duration", "uptime_mins", "disk_usage", "disk_util", "inet_down_billed", "inet_up_billed",
)
# The snapshot family in write order: instance_snapshots, quarantine, then the snapshot
# log, the commit record of a day; dictionary pages for the many repeated values.
FAMILY = DayFamily(SNAPSHOT_FAMILY, {
    "use_dictionary": sorted(
        (f"{f.name}.list.element" if pa.types.is_list(f.type) else f.name)
        for f in {f for d in family(SNAPSHOT_FAMILY) for f in d.schema}
        if f.name not in SPLIT_FLOAT_COLUMNS
    ),
    "use_byte_stream_split": list(SPLIT_FLOAT_COLUMNS),
})
SCHEMAS: dict[str, pa.Schema] = FAMILY.schemas
# NDJSON per fast-path batch: about a third of a 1,000-instance day, enough blocks for
# Arrow's threads while memory stays bounded by a fraction of a day.
_BATCH_BYTES = 96 << 20
_READ_AHEAD = 8
# Below this much NDJSON the value-by-value path is as fast: a fresh process (each
# collection) has not learned the drift patterns yet, and learning them costs ~0.3 s on a
# 1,000-instance snapshot that `flatten` takes in 0.08 s. Rebuilds and backfills go fast.
FAST_PATH_MIN_BYTES = 8 << 20  # raw files decompressed ahead of the batch being filled
_PREVIEW_COLUMNS = ("id", "label", "gpu_name", "actual_status", "dph_total")


@dataclass
class DayResult:
    """What one write of an (account, day) did; counts cover the snapshots flattened now."""

    account: str
    day: date
    snapshots: int = 0
    rows: int = 0
    quarantined_records: int = 0
    quarantined_values: int = 0
    coerced_values: int = 0
    new_fields: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)   # unreadable raw files, skipped
    rebuilt: bool = False                             # the whole day re-derived from raw
    snapshot_ids: list[str] = field(default_factory=list)  # flattened now, in landing order
    preview: list[dict[str, object]] = field(default_factory=list)

    def add(self, snapshot_id: str, flat: FlattenResult) -> None:
        self.snapshots += 1
        self.snapshot_ids.append(snapshot_id)
        self.rows += flat.table.num_rows
        self.quarantined_records += flat.quarantined_records
        self.quarantined_values += flat.quarantined_values
        self.coerced_values += flat.coerced_values
        self.new_fields |= flat.new_fields
        if not self.preview:
            self.preview = flat.table.select(list(_PREVIEW_COLUMNS)).slice(0, 5).to_pylist()

    def preview_markdown(self) -> str:
        """The first rows of the first snapshot, as a Markdown table (Dagster metadata)."""
        if not self.preview:
            return "(no rows)"
        head = "| " + " | ".join(_PREVIEW_COLUMNS) + " |"
        rule = "|" + "---|" * len(_PREVIEW_COLUMNS)
        body = ["| " + " | ".join(str(r[c]) for c in _PREVIEW_COLUMNS) + " |"
                for r in self.preview]
        return "\n".join([head, rule, *body])


@dataclass
class RebuildResult:
    """`rebuild`'s outcome over all days."""

    days: list[DayResult] = field(default_factory=list)
    orphan_days: list[tuple[str, date]] = field(default_factory=list)  # Parquet without raw

    @property
    def snapshots(self) -> int:
        return sum(d.snapshots for d in self.days)

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.days)

    @property
    def errors(self) -> list[str]:
        return [e for d in self.days for e in d.errors]

    def summary(self) -> str:
        text = (f"Rebuilt {len(self.days)} day partitions from {self.snapshots} raw snapshots "
                f"({self.rows} rows, {sum(d.quarantined_records for d in self.days)} records "
                f"and {sum(d.quarantined_values for d in self.days)} values quarantined).")
        if self.errors:
            text += f" Skipped {len(self.errors)} unreadable raw files: " + " ".join(self.errors)
        return text + left_alone(self.orphan_days, "days with Parquet but no raw")


# -- reading and writing one day ---------------------------------------------------------
def day_path(store: Store, dataset: str, account: str, day: date) -> str:
    return FAMILY.path(store, dataset, account, day)


def _read_day(store: Store, account: str, day: date) -> dict[str, pa.Table]:
    """The day's three tables (empty where a file is missing); StaleDayFile if one is
    unreadable or of another schema version."""
    tables: dict[str, pa.Table] = {}
    for dataset, schema in SCHEMAS.items():
        table = FAMILY.read(store, dataset, account, day)
        tables[dataset] = schema.empty_table() if table is None else table
    return tables


def _write_day(store: Store, account: str, day: date, parts: dict[str, list[pa.Table]]) -> None:
    """Sort and atomically rewrite the day's three files (the snapshot log last)."""
    FAMILY.write(store, account, day, {
        dataset: pa.concat_tables(parts[dataset]) if parts[dataset] else schema.empty_table()
        for dataset, schema in SCHEMAS.items()})


def _log_row(snapshot: RawSnapshot, flat: FlattenResult) -> pa.Table:
    return pa.table({
        "snapshot_id": pa.array([snapshot.snapshot_id], pa.string()),
        "snapshot_at": pa.array([snapshot.snapshot_at], TIMESTAMP),
        "instances": pa.array([flat.table.num_rows], pa.int64()),
        "quarantined_records": pa.array([flat.quarantined_records], pa.int64()),
        "quarantined_values": pa.array([flat.quarantined_values], pa.int64()),
        "pages": pa.array([snapshot.pages], pa.int64()),
        "new_fields": pa.array([sorted(flat.new_fields)], pa.list_(pa.string())),
        "schema_version": pa.array([SCHEMA_VERSION], pa.int32()),
    }, schema=SNAPSHOT_LOG_SCHEMA)


def _keep_committed(tables: dict[str, pa.Table]) -> dict[str, list[pa.Table]]:
    """Rows of committed snapshots (in the log); left-overs of a killed writer are dropped."""
    committed = set(tables["snapshots"].column("snapshot_id").to_pylist())
    keep = pa.array(sorted(committed), pa.string())
    parts: dict[str, list[pa.Table]] = {}
    for dataset, table in tables.items():
        mask = pc.is_in(table.column("snapshot_id"), value_set=keep)
        parts[dataset] = [table.filter(mask)]
    return parts


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a snapshot is parsed and flattened.

    Parsing creates ~100k small containers per snapshot and no reference cycles; letting
    the collector scan them repeatedly costs a quarter of the time. Reference counting
    still frees everything; the collector runs again afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- public API -----------------------------------------------------------------------------
# Two ways in, used by every caller (CLI, Dagster assets, demo, benchmarks):
# `land_pending` for new snapshots and `rebuild_day` (or `rebuild` over many days) to
# re-derive a day from raw.
def land_pending(store: Store, account: str, day: date) -> DayResult:
    """Land the day's raw snapshots that its Parquet does not hold yet.

    Write the raw snapshot first (`pipeline.landing.raw.write_snapshot`), then call this: only
    the snapshots missing from the day's log are flattened, the committed rows are kept
    as they are, and the day's files are rewritten once (a day with nothing new is not
    rewritten). That also heals a killed or failed earlier landing: its raw snapshots are
    missing from the log, so they land now. A stale or unreadable day file is re-derived
    whole from raw. Cost: one day's files, whatever the size of the history.
    """
    def work() -> DayResult:
        result = DayResult(account=account, day=day)
        _land_missing(store, result)
        return result

    return store.run_locked(account, day, work)


def _land_missing(store: Store, result: DayResult) -> None:
    """Under the day's lock: land every raw snapshot of the day missing from the log."""
    account, day = result.account, result.day
    try:
        existing = _read_day(store, account, day)
    except StaleDayFile:
        existing = None
    if existing is None:
        parts: dict[str, list[pa.Table]] = {dataset: [] for dataset in SCHEMAS}
        logged: set[str] = set()
        result.rebuilt = True
    else:
        parts = _keep_committed(existing)
        logged = set(existing["snapshots"].column("snapshot_id").to_pylist())
    _add_snapshots(parts, _day_snapshots(store, account, day, result.errors, skip=logged),
                   result)
    if result.snapshots:  # nothing new: the day stays as is (a stale day without raw too)
        _write_day(store, account, day, parts)


def _add_snapshots(parts: dict[str, list[pa.Table]], snapshots: list[RawSnapshot],
                   result: DayResult, progress: Callable[[int], None] | None = None) -> None:
    """Flatten the snapshots into `parts`, in batches of about `_BATCH_BYTES` of NDJSON
    (Arrow reads a batch on all cores); a raw file broken after its header is skipped
    whole and listed in `result.errors`, the others still land."""
    batch: list[tuple[RawSnapshot, bytes]] = []
    size = 0
    for snapshot, body in _bodies(snapshots):
        if isinstance(body, DataError):
            result.errors.append(str(body))
            if progress is not None:
                progress(1)
            continue
        batch.append((snapshot, body))
        size += len(body)
        if size >= _BATCH_BYTES:
            _add_batch(parts, batch, result, progress)
            batch, size = [], 0
    _add_batch(parts, batch, result, progress)


def _bodies(snapshots: list[RawSnapshot]) -> Iterator[tuple[RawSnapshot, bytes | DataError]]:
    """Each snapshot's decompressed NDJSON (or why it is unreadable), in order; two files
    are decompressed at a time (zstd releases the GIL), a few ahead of the consumer."""
    def body(snapshot: RawSnapshot) -> bytes | DataError:
        try:
            return snapshot.records.body()  # type: ignore[attr-defined]
        except DataError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        pending: deque[Future[bytes | DataError]] = deque()
        for i, snapshot in enumerate(snapshots):
            while len(pending) <= _READ_AHEAD and i + len(pending) < len(snapshots):
                pending.append(pool.submit(body, snapshots[i + len(pending)]))
            yield snapshot, pending.popleft().result()


def _add_batch(parts: dict[str, list[pa.Table]], batch: list[tuple[RawSnapshot, bytes]],
               result: DayResult, progress: Callable[[int], None] | None) -> None:
    """The columnar fast path for the batch; `flatten` for each snapshot it declines."""
    bodies = [fastflatten.Body(s.snapshot_id, s.snapshot_at, body) for s, body in batch]
    with _gc_paused():
        if sum(len(body) for _, body in batch) >= FAST_PATH_MIN_BYTES:
            fast = fastflatten.flatten_bodies(bodies)
        else:
            fast = [None] * len(bodies)
    for (snapshot, body), flat in zip(batch, fast, strict=True):
        try:
            if flat is None:
                with _gc_paused():
                    flat = flatten(snapshot.records.parse(body),  # type: ignore[attr-defined]
                                   snapshot.snapshot_id, snapshot.snapshot_at)
            parts["instance_snapshots"].append(flat.table)
            parts["quarantine"].append(flat.quarantine)
            parts["snapshots"].append(_log_row(snapshot, flat))
            result.add(snapshot.snapshot_id, flat)
        except DataError as exc:
            result.errors.append(str(exc))
        if progress is not None:
            progress(1)


def rebuild_day(store: Store, account: str, day: date,
                progress: Callable[[int], None] | None = None) -> DayResult:
    """Re-derive one account's day from its raw files only; a day without raw is left alone."""
    return store.run_locked(account, day,
                            lambda: _rebuild_day_locked(store, account, day, progress))


def _rebuild_day_locked(
    store: Store, account: str, day: date, progress: Callable[[int], None] | None = None
) -> DayResult:
    result = DayResult(account=account, day=day, rebuilt=True)
    parts: dict[str, list[pa.Table]] = {dataset: [] for dataset in SCHEMAS}
    _add_snapshots(parts, _day_snapshots(store, account, day, result.errors), result,
                   progress)
    if result.snapshots:  # never replace a day with nothing because its raw is unreadable
        _write_day(store, account, day, parts)
    return result


def _day_snapshots(store: Store, account: str, day: date, errors: list[str],
                   skip: set[str] | frozenset[str] = frozenset()) -> list[RawSnapshot]:
    """The day's raw snapshots (records read lazily), but for the ids in `skip`, which are
    left unopened: file names carry the ids, so a landing reads only what it needs."""
    snapshots = []
    for snapshot_id, path in snapshot_files(store, account, day).items():
        if snapshot_id in skip:
            continue
        try:
            snapshot = read_snapshot(store, path)
        except DataError as exc:
            errors.append(str(exc))
            continue
        if snapshot.account != account or snapshot.day != day:
            errors.append(f"Raw snapshot file {path} belongs to {snapshot.account} on "
                          f"{snapshot.day}, not to this partition; it was skipped.")
            continue
        snapshots.append(snapshot)
    return snapshots


def rebuild(
    store: Store,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    accounts: Iterable[str] | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> RebuildResult:
    """Re-derive every Parquet day in the window from the raw zone (never calls the API).

    `progress` is called with the number of snapshots just landed (increments). Days
    that have Parquet but no readable raw snapshot are left alone and listed in
    `orphan_days`; unreadable raw files are skipped and listed in `errors`.
    Days are independent, so with more than two of them they are rebuilt by `workers`
    processes (default: one per CPU, at most 4); each holds one day in memory at a time.
    """
    wanted = set(accounts) if accounts is not None else None
    days = [
        (a, d) for a, d in raw_partitions(store, None, date_from, date_to)
        if wanted is None or a in wanted
    ]
    result = RebuildResult()
    count = workers if workers is not None else min(os.cpu_count() or 1, 4)
    if count <= 1 or len(days) <= 2:
        result.days = [rebuild_day(store, account, day, progress) for account, day in days]
    else:
        # spawn, not fork: the caller may be a threaded Dagster process.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(count, len(days)), mp_context=context) as pool:
            accounts_, days_ = [a for a, _ in days], [d for _, d in days]
            for day_result in pool.map(rebuild_day, repeat(store), accounts_, days_):
                result.days.append(day_result)
                if progress is not None:
                    progress(day_result.snapshots + len(day_result.errors))
    rewritten = {(d.account, d.day) for d in result.days if d.snapshots}
    parquet_days = {
        (a, d) for dataset in SCHEMAS for a, d in store.list_partitions(dataset)
        if (wanted is None or a in wanted)
        and (date_from is None or d >= date_from) and (date_to is None or d <= date_to)
    }
    result.orphan_days = sorted(parquet_days - rewritten)
    return result


def newest_snapshots(store: Store) -> dict[str, tuple[datetime, int]]:
    """account -> (snapshot_at, instances) of its newest landed snapshot (for `status`).

    Reads only each account's newest day of the snapshot log, whatever the history's size
    (an earlier day only if that one holds no snapshot).
    """
    days: dict[str, list[date]] = {}
    for account, day in store.list_partitions("snapshots"):
        days.setdefault(account, []).append(day)
    out: dict[str, tuple[datetime, int]] = {}
    for account in sorted(days):
        for day in sorted(days[account], reverse=True):
            path = day_path(store, "snapshots", account, day)
            log = store.read_parquet(path).to_pylist() if store.exists(path) else []
            if log:
                row = max(log, key=lambda r: r["snapshot_at"])
                out[account] = (row["snapshot_at"], row["instances"])
                break
    return out
