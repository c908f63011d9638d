"""The incremental warehouse build: `sql/` models into `$HOME/warehouse.duckdb`.

Why it is shaped this way:
- Models, their order and materialization come from `pipeline.warehouse.models`.
- `daily` models are the big ones (instance_intervals is one row per instance snapshot):
  they are written as Parquet partitioned by account and UTC day under
  `$HOME/parquet/models/<model>/account=<a>/day=<d>/`, and only the days touched by new
  source partitions are recomputed, so a build costs in proportion to the new data plus
  the small report tables, not to the whole history.
- Analysts must never be blocked or see a half-built warehouse: each build writes a new
  DuckDB file and atomically renames it over `warehouse.duckdb`. Views over daily models
  list their exact Parquet files (no glob), and files replaced by a build are kept for
  `RETAIN_SUPERSEDED_SECONDS`, so a session that still has the old file open keeps reading
  the old, consistent data. A killed build leaves only hidden leftovers, swept by the next.
- The cadence is part of the models' meaning (intervals are capped at twice it), so it has
  no default here: callers pass the configured one through `build_for(settings)`, and a
  build with another cadence is a full rebuild.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from pipeline.core.config import Settings
from pipeline.core.errors import WarehouseError, first_line
from pipeline.landing import history
from pipeline.market.settings import MarketSettings, market_settings
from pipeline.storage.alertlog import alert_log_source
from pipeline.storage.datasets import CHARGE_FAMILY, SNAPSHOT_FAMILY, dataset, family
from pipeline.storage.objectstore import register_on
from pipeline.storage.schema import SCHEMA_VERSION
from pipeline.storage.store import Store, sql_file_list
from pipeline.warehouse import market_sources  # stand-in: see its docstring
from pipeline.warehouse.models import (
    SQL_DIR,
    Model,
    discover_models,
    interval_cap_minutes,
    render_sql,
    render_sql_over_files,
    sql_literal,
)
from pipeline.warehouse.paths import Paths, home_paths

# The history datasets the models read (`{{ <name>_glob }}` in their SQL), by family.
SOURCE_SCHEMAS: dict[str, pa.Schema] = {
    d.name: d.schema for fam in (SNAPSHOT_FAMILY, CHARGE_FAMILY) for d in family(fam)
}
# Only the snapshot family moves the incremental window: the billed-charges datasets feed
# only small table and view models, rebuilt on every build, so a bill refetch never
# recomputes daily models.
WINDOW_SOURCES: tuple[str, ...] = tuple(d.name for d in family(SNAPSHOT_FAMILY))

DB_NAME = "warehouse.duckdb"
STATE_NAME = "warehouse_state.json"
# Files a build replaced stay readable this long for sessions holding an older warehouse.
RETAIN_SUPERSEDED_SECONDS = 3600
DEFAULT_CHUNK_DAYS = 31
DEFAULT_MEMORY_LIMIT = "2GB"
STATE_VERSION = 1
STORAGE_COMPAT = "v1.4.0"

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- paths, state


def _load_state(paths: Paths) -> dict[str, Any]:
    try:
        state = json.loads(paths.state.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return state if state.get("version") == STATE_VERSION else {}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    # compact: at a year it lists thousands of files, written on every build
    tmp.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _models_signature(models: Sequence[Model], cadence_minutes: int) -> str:
    """Changes when any model SQL, the schema version or the cadence changes (full rebuild)."""
    h = hashlib.sha1(f"{SCHEMA_VERSION}|{cadence_minutes}|{STATE_VERSION}".encode())
    for m in models:
        h.update(m.name.encode())
        h.update(m.sql.encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- build


@dataclass
class BuildResult:
    """What a build did: which days it recomputed and how long it took."""

    db_path: Path
    build_id: str
    full: bool
    window: tuple[date, date] | None
    days_recomputed: int
    models: list[str]
    # rows written by daily models and inserted into tables updated in place
    rows_written: dict[str, int] = field(default_factory=dict)
    # the previous warehouse was copied and its incremental tables updated in place
    updated_in_place: bool = False
    seconds: float = 0.0
    model_seconds: dict[str, float] = field(default_factory=dict)  # wall time per model

    def summary(self) -> str:
        """One line for the CLI and logs."""
        scope = "full build" if self.full else "incremental build"
        window = f" of {self.window[0]} .. {self.window[1]}" if self.window else ""
        rows = sum(self.rows_written.values())
        return (f"Warehouse {self.db_path}: {scope}{window}, {len(self.models)} models, "
                f"{self.days_recomputed} days recomputed, {rows:,} rows written, "
                f"{self.seconds:.1f} s.")

    def model_metadata(self, name: str) -> dict[str, object]:
        """Dagster materialization metadata of one model."""
        meta: dict[str, object] = {"build_id": self.build_id, "full": self.full,
                                   "days_recomputed": self.days_recomputed}
        if name in self.rows_written:
            meta["rows_written"] = self.rows_written[name]
        return meta


def _days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _all_days(sources: Iterable[dict[str, dict[str, str]]]) -> set[date]:
    return {date.fromisoformat(d) for src in sources for acc in src.values() for d in acc}


def _changed_days(old: dict[str, Any], new: dict[str, dict[str, str]]) -> dict[str, set[date]]:
    """Per account, the days whose partition files were added, rewritten or removed."""
    changed: dict[str, set[date]] = {}
    for account in set(old) | set(new):
        a, b = old.get(account, {}), new.get(account, {})
        days = {date.fromisoformat(d) for d in set(a) | set(b) if a.get(d) != b.get(d)}
        if days:
            changed[account] = days
    return changed


def _plan_window(
    state: dict[str, Any], sources: dict[str, dict[str, dict[str, str]]], full: bool
) -> tuple[bool, tuple[date, date] | None]:
    """(full?, window of days to recompute) from the old and the new source fingerprints.

    The window starts, for each account with a change, at its last day with data before its
    earliest changed day (its last intervals end at the first new snapshot), takes the
    earliest of these and runs to the newest day, because the starting phase and incidents
    depend on what came before.
    """
    days = _all_days(sources.get(name, {}) for name in WINDOW_SOURCES)
    if not days:
        return full, None
    if full:
        return True, (min(days), max(days))
    changed: dict[str, set[date]] = {}
    for name in WINDOW_SOURCES:
        old = state.get("sources", {}).get(name, {})
        for account, account_days in _changed_days(old, sources.get(name, {})).items():
            changed.setdefault(account, set()).update(account_days)
    if not changed:
        return False, None
    # Per account: an account that collected nothing for days has its last snapshot before
    # the gap on an older day than the other accounts' data.
    start = min(_last_day_before(sources, account, min(account_days))
                for account, account_days in changed.items())
    return False, (start, max(max(days), *(max(d) for d in changed.values())))


def _last_day_before(sources: dict[str, dict[str, dict[str, str]]], account: str,
                     first: date) -> date:
    """The account's last day with a snapshot log file before `first`, else `first`: the
    log, not the instance rows or the quarantine, is what commits a snapshot."""
    earlier = [date.fromisoformat(d) for d in sources.get("snapshots", {}).get(account, {})
               if d < first.isoformat()]
    return max(earlier, default=first)


def _only_appended(state: dict[str, Any], sources: dict[str, dict[str, dict[str, str]]]
                   ) -> bool:
    """Did the snapshot history only grow at its end since the last build?

    True when no day file was removed and every changed day of an account is on or after
    its newest day in the last build (that day's file is rewritten as snapshots are added
    to it). Only then do the incremental tables' rules hold (see `Incremental`): a past
    day rewritten can change what older rows were built from, so the tables are rebuilt.
    """
    for name in WINDOW_SOURCES:
        old, new = state.get("sources", {}).get(name, {}), sources.get(name, {})
        for account, old_days in old.items():
            new_days = new.get(account, {})
            if set(old_days) - set(new_days):
                return False
            newest = max(old_days, default="")
            if any(d < newest and old_days.get(d) != fp for d, fp in new_days.items()):
                return False
    return True


def _set_changed_from(con: Any, state: dict[str, Any],
                      sources: dict[str, dict[str, dict[str, str]]],
                      window: tuple[date, date] | None) -> None:
    """The variables the `-- incremental rows:` predicates use: `changed_from`, the first
    day the build recomputes from the snapshots (none: a day after all data), and
    `bills_changed_from`, the first day whose stored bill changed."""
    never = date(9999, 12, 31)
    con.execute("SET VARIABLE changed_from = ?::DATE", [window[0] if window else never])
    bill_days = [d for name in (d.name for d in family(CHARGE_FAMILY))
                 for days in _changed_days(state.get("sources", {}).get(name, {}),
                                           sources.get(name, {})).values() for d in days]
    con.execute("SET VARIABLE bills_changed_from = ?::DATE", [min(bill_days, default=never)])
    con.execute("SET VARIABLE recompute_from = DATE '0001-01-01'")


def _context_days(cap_minutes: int) -> int:
    """How many days an interval can reach past the day it starts (at least one)."""
    return max(1, math.ceil(cap_minutes / 1440))


def _empty_source(paths: Paths, table: str, schema: pa.Schema) -> str:
    """A zero-row partition file standing in for a source that has no files yet."""
    key = dataset(table).partition_key
    target = f"{paths.models}/_empty/{table}/account=_none_/{key}=1970-01-01/part-0.parquet"
    if not paths.store.exists(target):
        paths.store.write_parquet_atomic(target, schema.empty_table())
    return paths.store.uri(target)


def _placeholders(paths: Paths, sources: dict[str, dict[str, dict[str, str]]],
                  uniform: dict[str, bool]) -> dict[str, str]:
    """`{{ <table>_glob }}` of each history dataset the models read, and
    `{{ <table>_union_by_name }}`: false when all its files share one schema."""
    store = paths.store
    out = {}
    for table, schema in SOURCE_SCHEMAS.items():
        if sources.get(table):
            out[f"{table}_glob"] = store.parquet_glob(table)
        else:
            out[f"{table}_glob"] = _empty_source(paths, table, schema)
        out[f"{table}_union_by_name"] = "false" if uniform.get(table) else "true"
    out["alert_log_glob"] = alert_log_source(store)
    return out


SchemaCache = dict[str, dict[str, list[Any]]]


def _uniform_schemas(store: Store, listings: dict[str, dict[tuple[str, str], list[Any]]],
                     sources: dict[str, dict[str, dict[str, str]]],
                     cached: SchemaCache) -> tuple[dict[str, bool], SchemaCache]:
    """Per history dataset, whether all its files share one Parquet schema, and the
    per-partition schema digests to keep for the next build.

    Why: a view reading files of different schemas (days written before and after a
    schema version change) needs `union_by_name`, which reads every file's schema each
    time a query is bound: at a year, 0.07 to 0.15 s a bind, a fifth of an incremental
    build. Footers are read only for partitions whose fingerprint changed. On an object
    store that would be one request per file, so it is not checked there (union_by_name).
    """
    if store.remote is not None:
        return {}, {}
    uniform: dict[str, bool] = {}
    out: SchemaCache = {}
    for table in SOURCE_SCHEMAS:
        fingerprints, known = sources.get(table, {}), cached.get(table, {})
        entries: dict[str, list[Any]] = {}
        for (account, day), files in listings[table].items():
            key, fingerprint = f"{account}|{day}", fingerprints.get(account, {}).get(day)
            entry = known.get(key)
            if entry is None or entry[0] != fingerprint:
                entry = [fingerprint, sorted({_schema_digest(store, f.path) for f in files})]
            entries[key] = entry
        out[table] = entries
        uniform[table] = len({h for _fp, digests in entries.values() for h in digests}) <= 1
    return uniform, out


def _uniform_snapshot_files(store: Store, listings: dict[str, dict[tuple[str, str], list[Any]]],
                            uniform: dict[str, bool]) -> dict[str, list[tuple[str, str]]]:
    """(ISO day, uri) of each file of the snapshot datasets whose files share one schema:
    what `_RecentViews` lists (a union by name over some days could lack a column)."""
    return {table: [(day, store.uri(f.path))
                    for (_account, day), files in sorted(listings[table].items()) for f in files]
            for table in WINDOW_SOURCES if uniform.get(table) and listings[table]}


def _schema_digest(store: Store, path: str) -> str:
    schema = pq.read_schema(path, filesystem=store.fs).remove_metadata()
    return hashlib.sha1(schema.to_string().encode()).hexdigest()[:16]


def _newest_snapshots_from(store: Store) -> date:
    """The earliest UTC day holding an account's newest snapshot: every account's newest
    snapshot is on or after it. `fleet_now` and `incidents` read only those days of the
    log (`newest_snapshot_days_from`) instead of every day file of the history."""
    newest = history.newest_snapshots(store)
    return min((at.astimezone(UTC).date() for at, _ in newest.values()),
               default=date(1970, 1, 1))


def _connect_build(path: Path, paths: Paths, memory_limit: str, threads: int | None) -> Any:
    # The file is written in an older storage format so that the `duckdb` CLI analysts use
    # (PyPI's duckdb-cli, a release behind the Python package) can open it.
    con = duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_COMPAT})
    # No fsync per commit: a build's file is thrown away unless the build completes, and
    # `_sync_file` makes it durable once, before it is swapped in (on ext4 each commit's
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


def _file_identity(path: Path) -> list[int]:
    """What changes when a file is replaced or written to: inode, size, modification time."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _open_build_copy(paths: Paths, tmp_db: Path, copying: Future[Any] | None,
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
        untouched = state.get("db_file") == _file_identity(paths.db)
    except FileNotFoundError:
        untouched = False
    return _connect_build(tmp_db, paths, memory_limit, threads) if untouched else None


def _sync_file(path: Path) -> None:
    """Wait until `path`'s content is on disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _in_background(work: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run `work(*args)` on its own thread; the future holds its result or its error."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(work(*args))
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)

    threading.Thread(target=run, name=f"warehouse-{work.__name__}", daemon=True).start()
    return future


def _discard_copy(copying: Future[Any] | None, tmp_db: Path) -> None:
    """Wait for a copy of the warehouse the build will not use, and delete it."""
    if copying is not None:
        with contextlib.suppress(OSError):
            copying.result()
        tmp_db.unlink(missing_ok=True)


def _set_window(con: Any, start: date, end: date) -> None:
    con.execute("SET VARIABLE build_from = ?::DATE", [start])
    con.execute("SET VARIABLE build_to = ?::DATE", [end])


class _DailyStore:
    """The Parquet partitions of daily models, as a manifest of exact files per partition."""

    def __init__(self, paths: Paths, state: dict[str, Any], full: bool) -> None:
        self.paths = paths
        self.manifest: dict[str, dict[str, list[str]]] = (
            {} if full else json.loads(json.dumps(state.get("manifest", {})))
        )
        self.superseded: dict[str, float] = dict(state.get("superseded", {}))
        self.published: list[str] = []  # files this build added, until it commits
        if full:
            for files in state.get("manifest", {}).values():
                for rels in files.values():
                    for rel in rels:
                        self.superseded.setdefault(rel, time.time())

    def replace_days(self, model: str, staging: Path, days: list[date], build_id: str) -> int:
        """Swap in the staged partitions of `days` (any account); returns files moved."""
        parts = self.manifest.setdefault(model, {})
        day_set = {d.isoformat() for d in days}
        now = time.time()
        for key in [k for k in parts if k.split("|", 1)[1] in day_set]:
            for rel in parts.pop(key):
                self.superseded[rel] = now
        moved = 0
        for file in sorted(staging.glob("account=*/day=*/*.parquet")):
            account = file.parent.parent.name.split("=", 1)[1]
            day = file.parent.name.split("=", 1)[1]
            rel = (f"{model}/{file.parent.parent.name}/{file.parent.name}/"
                   f"part-{build_id}-{moved}.parquet")
            self.paths.store.publish_file(file, f"{self.paths.models}/{rel}")
            self.published.append(rel)
            parts.setdefault(f"{account}|{day}", []).append(rel)
            moved += 1
        return moved

    @property
    def _markers(self) -> str:
        return f"{self.paths.models}/_building"

    def begin(self, build_id: str, walk: bool) -> None:
        """Sweep what earlier builds left, then mark this build as running until `end`.

        Why a marker: walking every model folder for orphans costs about 30 ms at a year
        (3,000 files), and only a build that died after publishing files and before
        committing its state leaves any; such a build leaves its marker. `walk`: look for
        orphans anyway (a state written before builds left markers).
        """
        dead = self.paths.store.list_files(self._markers)
        self.sweep(RETAIN_SUPERSEDED_SECONDS, orphans=walk or bool(dead))
        for marker in dead:  # the build lock is ours: their builds are not running
            self.paths.store.delete(marker)
        self.paths.store.write_bytes_atomic(f"{self._markers}/build-{build_id}", b"")

    def end(self, build_id: str) -> None:
        """This build left no orphans: it committed, or deleted what it published."""
        self.paths.store.delete(f"{self._markers}/build-{build_id}")

    def discard_published(self) -> None:
        """Delete what this build published: a failed build leaves `parquet/models` as the
        last good build left it, so an engine globbing it (Spark, Trino) never counts a day
        twice. (A killed build's files are orphans that the next build's `sweep` removes.)"""
        for rel in self.published:
            self.paths.store.delete(f"{self.paths.models}/{rel}")
        self.published.clear()

    def files(self, model: str) -> list[str]:
        return [uri for _day, uri in self.day_files(model)]

    def day_files(self, model: str) -> list[tuple[str, str]]:
        """(ISO day, uri) of each of the model's files, by partition."""
        parts = self.manifest.get(model, {})
        return [(key.split("|", 1)[1], self.paths.model_uri(rel))
                for key in sorted(parts) for rel in parts[key]]

    def sweep(self, retain_seconds: float, orphans: bool = True) -> None:
        """Delete superseded files past retention, and (walking every model folder)
        orphans no state knows about: what a killed build left.

        On an object store superseded files go at once (`_retention`): Spark or Trino read
        `parquet/models/...` by globbing, and a retained old file would count twice.
        """
        now = time.time()
        retain_seconds = _retention(self.paths, retain_seconds)
        store, models = self.paths.store, self.paths.models
        for rel, when in list(self.superseded.items()):
            if now - when >= retain_seconds:
                store.delete(f"{models}/{rel}")
                del self.superseded[rel]
        if not orphans:
            return
        known = {rel for parts in self.manifest.values() for rels in parts.values() for rel in rels}
        known |= set(self.superseded)
        for path in store.walk_files(models):
            rel = path[len(models) + 1:]
            if _MODEL_FILE_RE.match(rel) and rel not in known:
                store.delete(path)
        for folder in self.paths.db.parent.glob(f".{self.paths.db.stem}.staging-*"):
            shutil.rmtree(folder, ignore_errors=True)


_MODEL_FILE_RE = re.compile(r"^[A-Za-z0-9][\w]*/account=[^/]+/day=[^/]+/[^/]+\.parquet$")


def _retention(paths: Paths, retain_seconds: float) -> float:
    """How long superseded model files stay: none on an object store (see `sweep`)."""
    return retain_seconds if paths.store.remote is None else 0.0


def _staging(paths: Paths, build_id: str) -> Path:
    """The local folder a build writes model Parquet into before publishing it."""
    return paths.db.parent / f".{paths.db.stem}.staging-{build_id}"


def _daily_select_sql(files: list[str]) -> str:
    """The rows of a daily model's files, with its partition columns first."""
    return (
        f"SELECT account, day, * EXCLUDE (account, day) FROM read_parquet({sql_file_list(files)}, "
        "hive_partitioning = true, hive_types = {'account': VARCHAR, 'day': DATE})"
    )


class _RecentViews:
    """Temporary views of the history's last days, for a build that updates in place.

    Why: DuckDB binds a view over a year of day files in about 8 ms (it parses and filters
    the hive path of every file), and an incremental build binds such views a dozen times
    though it reads only its last days: at a year that was a tenth of the build. A build
    that updates in place reads no history older than `since`, the earliest of the
    window's first day, `newest_snapshot_days_from` and the `recompute_from` of each table
    it updates (`widen`), less `context_days`: what the models' filters read (the tests
    compare every model of such builds with a full build). Temp views of the same names
    shadow the whole-history views for the build's own queries; those stay for analysts.
    """

    def __init__(self, con: Any, since: date, context_days: int, say: Progress) -> None:
        self.con, self.since, self.context_days, self.say = con, since, context_days, say
        say(f"reading the history from {since} on")
        # view name -> (its SQL over a list of files, its files as (ISO day, uri))
        self._views: dict[str, tuple[Callable[[list[str]], str], list[tuple[str, str]]]] = {}

    def add(self, name: str, sql_over: Callable[[list[str]], str],
            files: list[tuple[str, str]]) -> None:
        self._views[name] = (sql_over, files)
        self._create(name)

    def widen(self, recompute_from: date) -> None:
        """Show the days a table updated in place recomputes from, too."""
        since = max(recompute_from, date.min + timedelta(days=self.context_days)) \
            - timedelta(days=self.context_days)
        if since < self.since:
            self.since = since
            self.say(f"reading the history from {since} on")
            for name in self._views:
                self._create(name)

    def _create(self, name: str) -> None:
        sql_over, files = self._views[name]
        chosen = [uri for day, uri in files if day >= self.since.isoformat()]
        if chosen:
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql_over(chosen)}")
        else:  # nothing that recent: the whole-history view is right, only slower
            self.con.execute(f"DROP VIEW IF EXISTS temp.{name}")


@dataclass(frozen=True)
class _Chunking:
    """How daily models are cut: `days` per query, `writers` threads writing its files."""

    days: int
    writers: int


def _chunks(window: tuple[date, date], chunk_days: int) -> list[tuple[date, date]]:
    days = _days_between(*window)
    groups = (days[i:i + chunk_days] for i in range(0, len(days), chunk_days))
    return [(g[0], g[-1]) for g in groups]


@dataclass
class _ChunkWrite:
    """One chunk's files being written on the pool: published once all are done."""

    staging: Path
    days: list[date]
    files: list[Future[int]]


def _start_writes(pool: ThreadPoolExecutor, table: pa.Table, staging: Path,
                  days: list[date]) -> _ChunkWrite:
    """Queue one Parquet file per (account, day) of a chunk's rows on `pool`.

    Why not DuckDB's COPY: a temporary table plus one filtered COPY per partition
    materialized the chunk twice and scanned it once per day, COPY ... PARTITION_BY costs
    more CPU than this whole path, and DuckDB's Parquet writer is about twice as slow as
    pyarrow's on the wide string columns. The files hold the same types either way.
    """
    parts = _rows_by_partition(table)
    files = [pool.submit(_write_partition, staging, account, day, batches)
             for (account, day), batches in sorted(parts.items())]
    return _ChunkWrite(staging, days, files)


def _publish_chunk(chunk: _ChunkWrite, store: _DailyStore, model: str, build_id: str) -> int:
    """Wait for a chunk's files, then swap them in for its days; returns rows written."""
    rows = sum(f.result() for f in chunk.files)
    store.replace_days(model, chunk.staging, chunk.days, build_id)
    shutil.rmtree(chunk.staging, ignore_errors=True)
    return rows


# DuckDB types its Parquet writer stores differently from their Arrow form: a HUGEINT (what
# sum() of integers gives) arrives as decimal128(38, 0) but DuckDB writes it as DOUBLE.
_DUCKDB_PARQUET_TYPES = {"HUGEINT": pa.float64(), "UHUGEINT": pa.float64()}


def _as_duckdb_writes(relation: Any) -> pa.Table:
    """The relation as Arrow, with the column types DuckDB's own COPY would have written,
    so model files (and what analysts read from them) keep their types."""
    table = relation.to_arrow_table()
    for i, kind in enumerate(relation.types):
        target = _DUCKDB_PARQUET_TYPES.get(str(kind))
        if target is not None:
            table = table.set_column(i, table.field(i).name, table.column(i).cast(target))
    return table


# A batch cut into more runs of one (account, day) than this is sorted first.
_MAX_RUNS_PER_BATCH = 64


def _rows_by_partition(table: pa.Table) -> dict[tuple[str, date], list[pa.RecordBatch]]:
    """The rows of each (account, day) of `table`, as slices of its record batches.

    Why runs, not one filter per day: a filter reads the whole chunk once per partition,
    which cost more than writing the files. Rows a model reads from day files come out in
    long runs of one day, so cutting each batch at the key changes copies nothing; a batch
    in hash order (an aggregate) is sorted first.
    """
    for key in ("account", "day"):
        if table[key].null_count:
            raise WarehouseError(
                f"{table[key].null_count} rows have no {key}; fix the model's SQL.")
    parts: dict[tuple[str, date], list[pa.RecordBatch]] = {}
    for batch in table.to_batches():
        bounds = _run_bounds(batch)
        if len(bounds) - 1 > _MAX_RUNS_PER_BATCH:
            batch = batch.sort_by([("account", "ascending"), ("day", "ascending")])
            bounds = _run_bounds(batch)
        accounts, days = batch["account"], batch["day"]
        for start, end in pairwise(bounds):
            key = (accounts[start].as_py(), days[start].as_py())
            parts.setdefault(key, []).append(batch.slice(start, end - start))
    return parts


def _run_bounds(batch: pa.RecordBatch) -> list[int]:
    """Offsets where (account, day) changes in `batch`, with 0 and its length."""
    if batch.num_rows == 0:
        return [0]
    ends: set[int] = set()
    for key in ("account", "day"):
        ends.update(pc.run_end_encode(batch[key]).run_ends.to_pylist())
    return [0, *sorted(ends)]


def _write_partition(staging: Path, account: str, day: date,
                     batches: list[pa.RecordBatch]) -> int:
    """Write the rows of (`account`, `day`) under `staging`; returns how many."""
    folder = staging / f"account={account}" / f"day={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    part = pa.Table.from_batches(batches).drop_columns(["account", "day"])
    pq.write_table(part, folder / "data_0.parquet", compression="zstd",
                   use_dictionary=_dictionary_columns(part.schema))
    return part.num_rows


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary encoding: all but floating point ones, whose values rarely
    repeat (trying a dictionary on them first cost a quarter of the write time)."""
    return [f.name for f in schema if not pa.types.is_floating(f.type)]


@dataclass
class _Run:
    """What every model of one build shares."""

    con: Any
    store: _DailyStore
    window: tuple[date, date] | None
    build_id: str
    chunking: _Chunking
    say: Progress
    # a copy of the previous warehouse whose tables are updated in place (see `Incremental`)
    carry: bool
    placeholders: dict[str, str]
    # snapshot datasets whose files all share one schema, with their files as (ISO day, uri)
    uniform_files: dict[str, list[tuple[str, str]]]
    recent: _RecentViews | None
    # digests of the SQL of the views of history files, in the previous build and this one
    views_before: dict[str, str]
    views_now: dict[str, str] = field(default_factory=dict)


def _build_daily(run: _Run, model: Model, sql: str) -> int:
    """Query the window chunk by chunk; pyarrow writes a chunk's day files on a pool while
    DuckDB computes the next chunk (both release the GIL), so the two overlap.

    A model with `-- warehouse: table` is also a table of all its days in the warehouse:
    updated chunk by chunk in a copy of the previous warehouse, else read once from its
    files at the end."""
    con, store, build_id = run.con, run.store, run.build_id
    in_place = run.carry and model.warehouse_table and _is_table(con, model.name)
    written = 0
    if run.window is not None:
        with ThreadPoolExecutor(max_workers=run.chunking.writers) as pool:
            pending: _ChunkWrite | None = None
            for start, end in _chunks(run.window, run.chunking.days):
                run.say(f"{model.name}: {start} .. {end}")
                staging = _staging(store.paths, build_id) / model.name / start.isoformat()
                _set_window(con, start, end)
                table = _as_duckdb_writes(con.sql(sql))
                if in_place:
                    _replace_table_days(con, model.name, table, start, end)
                if pending is not None:
                    written += _publish_chunk(pending, store, model.name, build_id)
                pending = _start_writes(pool, table, staging, _days_between(start, end))
                del table  # the pending writes hold what they need
            if pending is not None:
                written += _publish_chunk(pending, store, model.name, build_id)
    if in_place:
        return written
    files = store.files(model.name)
    _drop_previous(con, model.name)
    if files:
        kind = "TABLE" if model.warehouse_table else "VIEW"
        con.execute(f"CREATE {kind} {model.name} AS {_daily_select_sql(files)}")
        if run.recent is not None and not model.warehouse_table:
            run.recent.add(model.name, _daily_select_sql, store.day_files(model.name))
    else:
        _set_window(con, date(1970, 1, 1), date(1970, 1, 1))
        con.execute(f"CREATE TABLE {model.name} AS SELECT * FROM ({sql}) LIMIT 0")
    return written


def _run_model(run: _Run, model: Model, sql: str) -> int:
    """Run one model with its header's DuckDB settings, reset afterwards so that they
    change no other model's plan."""
    for name, value in model.settings:
        run.con.execute(f"SET {name} = {value}")
    try:
        return _materialize(run, model, sql)
    finally:
        for name, _value in model.settings:
            run.con.execute(f"RESET {name}")


def _materialize(run: _Run, model: Model, sql: str) -> int:
    if model.materialized == "daily":
        return _build_daily(run, model, sql)
    if run.carry and model.incremental is not None:
        return _update_in_place(run, model, sql)
    if model.materialized == "view":
        _create_view(run, model, sql)
        return 0
    if model.materialized == "macro":
        run.say(f"{model.name} (macro)")
        run.con.execute(f"CREATE OR REPLACE MACRO {model.name}({model.parameters}) AS TABLE {sql}")
        return 0
    run.say(f"{model.name} (table)")
    _drop_previous(run.con, model.name)
    run.con.execute(f"CREATE TABLE {model.name} AS {sql}")
    return 0


def _create_view(run: _Run, model: Model, sql: str) -> None:
    """Create a view model; a view of one snapshot dataset's files gets its twin over the
    recent days too, in a build that updates in place (`_RecentViews`).

    A build in place keeps the previous build's view of history files when its SQL is
    unchanged: binding one over a year of day files costs 10 to 20 ms, and the copy is
    the file that build wrote, untouched since (`_open_build_copy`)."""
    reads_files_only = not model.deps
    if reads_files_only:
        run.views_now[model.name] = digest = hashlib.sha1(sql.encode()).hexdigest()[:16]
    if not (run.carry and reads_files_only and run.views_before.get(model.name) == digest):
        run.say(f"{model.name} (view)")
        _drop_previous(run.con, model.name)
        run.con.execute(f"CREATE VIEW {model.name} AS {sql}")
    source = model.sources[0] if len(model.sources) == 1 and reads_files_only else None
    if run.recent is not None and source in run.uniform_files:
        run.recent.add(
            model.name,
            lambda uris: render_sql_over_files(model, run.placeholders, {source: uris}),
            run.uniform_files[source])


def _is_table(con: Any, name: str) -> bool:
    return con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_name = ? AND table_type = 'BASE TABLE'", [name]).fetchone()[0] > 0


def _replace_table_days(con: Any, name: str, chunk: pa.Table, start: date, end: date) -> None:
    """Swap a chunk's days (every account) in a daily model's warehouse table."""
    con.execute(f"DELETE FROM {name} WHERE day BETWEEN ? AND ?", [start, end])
    con.register("_chunk_rows", chunk)
    try:
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _chunk_rows")
    finally:
        con.unregister("_chunk_rows")


def _drop_previous(con: Any, name: str) -> None:
    """Drop the previous build's `name`, when the build works on a copy of the previous
    warehouse (a daily model with no files yet is an empty table, then a view)."""
    try:
        con.execute(f"DROP TABLE IF EXISTS {name}")
    except duckdb.CatalogException:  # it is a view
        con.execute(f"DROP VIEW {name}")


def _update_in_place(run: _Run, model: Model, sql: str) -> int:
    """Replace only the rows of an incremental table that the new history can change.

    The table was copied with the previous warehouse; its `-- incremental rows:` predicate
    picks the rows to recompute, and `recompute_from` tells the SQL the earliest day of
    them, so that it reads no older input than it needs.
    """
    assert model.incremental is not None
    con = run.con
    name, rows, day = model.name, model.incremental.rows, model.incremental.day
    # one scan of the table: the rows out, and the earliest day among them
    days = [d for (d,) in con.execute(f"DELETE FROM {name} WHERE {rows} RETURNING {day}"
                                       ).fetchall()]
    deleted = len(days)
    con.execute("SET VARIABLE recompute_from = least(getvariable('changed_from'), "
                "getvariable('bills_changed_from'), ?::DATE)", [min(days, default=None)])
    start = con.execute("SELECT getvariable('recompute_from')").fetchone()[0]
    if run.recent is not None:
        run.recent.widen(start)
    inserted = con.execute(
        f"INSERT INTO {name} BY NAME SELECT * FROM ({sql}) AS {name} WHERE {rows}"
    ).fetchone()[0]
    run.say(f"{name} (table, updated from {start}: {deleted} rows out, {inserted} in)")
    # for the predicates of the tables built from this one
    con.execute(f"SET VARIABLE {name}_recomputed_from = getvariable('recompute_from')")
    con.execute("SET VARIABLE recompute_from = DATE '0001-01-01'")
    return int(inserted)


def _write_build_info(con: Any, result: BuildResult, cadence: int, cap: int) -> None:
    window = result.window or (None, None)
    con.execute(
        "CREATE OR REPLACE TABLE build_info AS SELECT ?::VARCHAR AS build_id, "
        "now() AS built_at, "
        "?::INTEGER AS cadence_minutes, ?::INTEGER AS cap_minutes, ?::BOOLEAN AS full_build, "
        "?::DATE AS window_from, ?::DATE AS window_to, ?::INTEGER AS schema_version, "
        "?::DOUBLE AS build_seconds",
        [result.build_id, cadence, cap, result.full, window[0], window[1], SCHEMA_VERSION,
         result.seconds],
    )


def build(
    home: Path | str,
    *,
    cadence_minutes: int,
    full: bool = False,
    progress: Progress | None = None,
    sql_dir: Path | str = SQL_DIR,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
    chunk_days: int = DEFAULT_CHUNK_DAYS,
    lock_timeout: float = 600.0,
    market: MarketSettings | None = None,
) -> BuildResult:
    """Build (or bring up to date) `$home/warehouse.duckdb` from the Parquet history.

    Incremental unless `full`, the model SQL, the schema version or the cadence changed:
    only days whose source partitions changed since the last build (plus the day before,
    whose last intervals end in them) are recomputed. One build at a time per home (a
    file lock); readers are never blocked (the new file is renamed into place).
    """
    if cadence_minutes <= 0:
        raise WarehouseError("The cadence must be a positive number of minutes.")
    say = progress or (lambda _msg: None)
    paths = home_paths(home)
    if paths.store.remote is None and not Path(paths.home).is_dir():
        raise WarehouseError(f"No data home at {paths.home}: run `vast-pipeline collect` first.")
    models = discover_models(sql_dir)
    paths.db.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(paths.lock), timeout=lock_timeout):
            return _build_locked(paths, models, cadence_minutes, full, say,
                                 memory_limit, threads, chunk_days,
                                 market or MarketSettings())
    except Timeout as exc:
        raise WarehouseError(
            f"Another build of {paths.db} is still running after {lock_timeout:.0f} s; "
            "try again when it has finished."
        ) from exc


def build_for(settings: Settings, **options: Any) -> BuildResult:
    """`build` of the configured home with the configured cadence: what the CLI, the demo,
    Dagster and the benchmark call, so none of them forces the others into a full rebuild
    by building with another cadence. `options` are `build`'s keyword arguments."""
    options.setdefault("market", market_settings(settings))
    return build(settings.home, cadence_minutes=settings.cadence_minutes, **options)


def _retire(db: Path, build_id: str) -> None:
    """Keep a second name for the live file the build is about to replace, so that the
    rename does not free its blocks: freeing 100 MB took 30 ms on a disk mounted with
    `discard`, and the next build deletes it while it lists the history (`_delete_retired`).
    Sessions that have it open read it either way."""
    with contextlib.suppress(OSError):  # no file yet, or no hard links here: plain rename
        os.link(db, db.with_name(f".{db.name}.{build_id}.retired"))


def _delete_retired(paths: Paths) -> None:
    for retired in paths.db.parent.glob(f".{paths.db.name}.*.retired"):
        with contextlib.suppress(OSError):  # housekeeping: the next build tries again
            retired.unlink(missing_ok=True)


def _remove_killed_build_files(paths: Paths) -> None:
    """Delete the hidden half-written database and state files of a killed build.

    Safe only under the build lock: no other build can be writing them then.
    """
    for pattern in (f".{paths.db.name}.*.building*", f".{paths.state.name}.*.tmp"):
        for leftover in paths.db.parent.glob(pattern):
            leftover.unlink(missing_ok=True)


def _build_locked(
    paths: Paths, models: list[Model], cadence: int, full: bool, say: Progress,
    memory_limit: str, threads: int | None, chunk_days: int,
    market: MarketSettings,
) -> BuildResult:
    started = time.monotonic()
    outer = say

    def say(msg: str) -> None:
        outer(f"[{time.monotonic() - started:6.1f} s] {msg}")

    _remove_killed_build_files(paths)
    # the file the last build replaced goes while this one lists the history
    retiring = _in_background(_delete_retired, paths)
    build_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    tmp_db = paths.db.with_name(f".{paths.db.name}.{build_id}.building")
    state = _load_state(paths)
    signature = _models_signature(models, cadence)
    full = full or state.get("signature") != signature
    # Copied while the history is listed (40 ms each at a year), in case the build can
    # update the warehouse in place; deleted unused otherwise.
    copying = None if full or not paths.db.exists() else \
        _in_background(shutil.copyfile, paths.db, tmp_db)
    listings = {table: paths.store.partition_files(table) for table in SOURCE_SCHEMAS}
    sources = {table: Store.fingerprints(listing) for table, listing in listings.items()}
    if not any(sources.values()):
        _discard_copy(copying, tmp_db)
        raise WarehouseError(f"No snapshots or bills under {paths.parquet}: run "
                             "`vast-pipeline collect` or `vast-pipeline charges` first.")
    # Bills without snapshots build too (a team backfilling months of bills before its first
    # snapshot): the snapshot models read empty stand-in files (`_empty_source`) and come out
    # empty; the first snapshots then arrive as history that only grew at its end.
    full, window = _plan_window(state, sources, full)
    store = _DailyStore(paths, state, full)
    store.begin(build_id, walk=not state.get("builds_leave_markers"))
    say(f"build {build_id}: {'full' if full else 'incremental'}, days {window or 'none'}")
    result = BuildResult(paths.db, build_id, full, window,
                         len(_days_between(*window)) if window else 0, [m.name for m in models])
    cap = interval_cap_minutes(cadence)
    uniform, schemas = _uniform_schemas(paths.store, listings, sources,
                                        state.get("schemas", {}))
    placeholders = _placeholders(paths, sources, uniform)
    market_found = market_sources.listing(paths.store)
    market_prints = market_sources.fingerprints(market_found)
    market_uniform, market_schemas = market_sources.uniform(
        paths.store, market_found, market_prints, state.get("market_schemas", {}),
        _schema_digest)
    placeholders |= market_sources.placeholders(paths.store, paths.models, market_found,
                                                market_uniform)
    placeholders |= market.advice_placeholders()
    context_days, newest_from = _context_days(cap), _newest_snapshots_from(paths.store)
    carry = not full and _only_appended(state, sources)
    con = _open_build_copy(paths, tmp_db, copying, state, memory_limit, threads) \
        if carry else None
    result.updated_in_place = carry = con is not None
    if not carry:
        _discard_copy(copying, tmp_db)
    # The copy leaves all of the file (100 MB at a year) to be written out, which the end
    # waited for (55 ms); the disk is idle while the models run. `_sync_file` still syncs.
    flushing = _in_background(_sync_file, tmp_db) if carry else None
    con = con or _connect_build(tmp_db, paths, memory_limit, threads)
    recent = _RecentViews(con, min(window[0] if window else newest_from, newest_from)
                          - timedelta(days=context_days), context_days, say) if carry else None
    run = _Run(con, store, window, build_id,
               _Chunking(chunk_days, threads or os.cpu_count() or 1), say, carry,
               placeholders, _uniform_snapshot_files(paths.store, listings, uniform), recent,
               state.get("views", {}))
    try:
        con.execute("SET VARIABLE cap_minutes = ?::INTEGER", [cap])
        con.execute("SET VARIABLE context_days = ?::INTEGER", [context_days])
        con.execute("SET VARIABLE newest_snapshot_days_from = ?::DATE", [newest_from])
        _set_changed_from(con, state, sources, window)
        con.execute("SET VARIABLE market_changed_from = ?::DATE", [
            market_sources.changed_from(state.get("market_sources", {}), market_prints)
            if carry else market_sources.EVERYTHING])
        con.execute("SET VARIABLE market_newest_day = ?::DATE",
                    [market_sources.newest_day(market_found)])
        for model in models:
            sql = render_sql(model, placeholders)
            model_started = time.monotonic()
            try:
                result.rows_written[model.name] = _run_model(run, model, sql)
            except (duckdb.Error, pa.ArrowException, OSError) as exc:
                raise WarehouseError(
                    f"Model {model.name} ({model.path.name}) failed: {first_line(exc)}."
                ) from exc
            result.model_seconds[model.name] = time.monotonic() - model_started
        # build_info records the seconds up to here (the models); the checkpoint and the
        # swap that follow take a moment more, which the final `result.seconds` includes
        result.seconds = time.monotonic() - started
        _write_build_info(con, result, cadence, cap)
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        tmp_db.unlink(missing_ok=True)
        store.discard_published()
        store.end(build_id)
        shutil.rmtree(_staging(paths, build_id), ignore_errors=True)
        raise
    con.close()
    _sync_file(tmp_db)
    db_file = _file_identity(tmp_db)  # the rename keeps it
    shutil.rmtree(_staging(paths, build_id), ignore_errors=True)
    # State first: the files the live (old) warehouse reads are in `superseded` from here.
    _write_json_atomic(paths.state, {
        "version": STATE_VERSION, "signature": signature, "build_id": build_id,
        "sources": sources, "manifest": store.manifest, "superseded": store.superseded,
        "schemas": schemas, "builds_leave_markers": True, "db_file": db_file,
        "views": run.views_now, "market_sources": market_prints,
        "market_schemas": market_schemas,
    })
    say(f"state written, swapping in {paths.db}")
    _retire(paths.db, build_id)
    os.replace(tmp_db, paths.db)
    if flushing is not None:
        with contextlib.suppress(OSError):  # an early start only: the file was synced
            flushing.result()
    retiring.result()
    store.sweep(RETAIN_SUPERSEDED_SECONDS, orphans=False)
    store.end(build_id)
    result.seconds = time.monotonic() - started
    say(f"built {paths.db} in {result.seconds:.1f} s")
    return result
