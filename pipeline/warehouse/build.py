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

This module holds the entry points and the sequence of steps (`_build_locked`); each step
lives with its concern: `state` (what a build leaves for the next), `window` (which days
it recomputes), `sources` (what the models read), `dbfile` (the DuckDB file's lifecycle),
`dailystore` and `chunks` (the daily models' Parquet), `runners` (one model of each kind).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.core.config import Settings
from pipeline.core.errors import WarehouseError, first_line
from pipeline.market.settings import MarketSettings, market_settings
from pipeline.storage.schema import SCHEMA_VERSION
from pipeline.warehouse import dbfile
from pipeline.warehouse.chunks import Chunking
from pipeline.warehouse.dailystore import DailyStore, staging_dir
from pipeline.warehouse.models import (
    SQL_DIR,
    Model,
    discover_models,
    interval_cap_minutes,
    render_sql,
)
from pipeline.warehouse.paths import Paths, home_paths
from pipeline.warehouse.runners import Run, run_model
from pipeline.warehouse.sources import Binding, Listings, RecentViews, bind_sources, list_sources
from pipeline.warehouse.state import (
    DB_NAME,
    RETAIN_SUPERSEDED_SECONDS,
    STATE_NAME,
    STATE_VERSION,
    Fingerprints,
    Progress,
    load_state,
    models_signature,
    write_json_atomic,
)
from pipeline.warehouse.window import (
    Window,
    context_days,
    daily_reads,
    days_in,
    newest_snapshots_from,
    only_appended,
    plan_windows,
    set_changed_from,
    window_sources,
)

# What callers import from here (the file names and the retention are defined in `state`).
__all__ = ["DB_NAME", "DEFAULT_CHUNK_DAYS", "DEFAULT_MEMORY_LIMIT",
           "RETAIN_SUPERSEDED_SECONDS", "STATE_NAME", "BuildResult", "build", "build_for"]

DEFAULT_CHUNK_DAYS = 31
DEFAULT_MEMORY_LIMIT = "2GB"


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
    file lock); readers are never blocked (the new file is renamed into place). `market`:
    the `[market]` settings whose savings-advice thresholds the SQL reads (defaults if
    None; `build_for` passes the configured ones).
    """
    if cadence_minutes <= 0:
        raise WarehouseError("The cadence must be a positive number of minutes.")
    say = progress or (lambda _msg: None)
    paths = home_paths(home)
    if paths.store.remote is None and not Path(paths.home).is_dir():
        raise WarehouseError(f"No data home at {paths.home}: run `vast-pipeline collect` first.")
    models = discover_models(sql_dir)
    paths.db.parent.mkdir(parents=True, exist_ok=True)
    with dbfile.build_lock(paths, lock_timeout):
        return _build_locked(paths, models, cadence_minutes, full, say,
                             _Options(memory_limit, threads, chunk_days,
                                      market or MarketSettings()))


def build_for(settings: Settings, **options: Any) -> BuildResult:
    """`build` of the configured home with the configured cadence: what the CLI, the demo,
    Dagster and the benchmark call, so none of them forces the others into a full rebuild
    by building with another cadence. `options` are `build`'s keyword arguments."""
    options.setdefault("market", market_settings(settings))
    return build(settings.home, cadence_minutes=settings.cadence_minutes, **options)


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


@dataclass(frozen=True)
class _Options:
    """How a build may use the machine: DuckDB's memory and threads, days per chunk."""

    memory_limit: str
    threads: int | None
    chunk_days: int
    market: MarketSettings  # its savings thresholds are placeholders of the SQL


@dataclass(frozen=True)
class _Plan:
    """What a build decided before it runs a model."""

    build_id: str
    tmp_db: Path  # the hidden file it writes (`dbfile.building_file`)
    state: dict[str, Any]  # the last build's
    signature: str
    full: bool
    window: Window | None  # spans the daily models' windows
    windows: dict[str, Window | None]  # per daily model: the changes of what it reads
    window_sources: tuple[str, ...]  # the datasets the daily models read
    listings: Listings
    sources: Fingerprints
    copying: Future[Any] | None  # the live warehouse being copied to `tmp_db`


def _build_locked(paths: Paths, models: list[Model], cadence: int, full: bool,
                  say: Progress, options: _Options) -> BuildResult:
    """One build, under the build lock: plan, bind the sources, run every model into a new
    file, then commit the state and swap the file in."""
    started = time.monotonic()
    say = _with_elapsed(say, started)
    retiring = _clear_leftovers(paths)
    plan = _plan(paths, models, cadence, full)
    store = _begin(paths, plan, say)
    result = BuildResult(paths.db, plan.build_id, plan.full, plan.window,
                         days_in(plan.window), [m.name for m in models])
    binding = bind_sources(paths, plan.listings, plan.sources, plan.state, plan.window_sources)
    binding = replace(binding, placeholders=binding.placeholders
                      | options.market.advice_placeholders())
    cap = interval_cap_minutes(cadence)
    context, newest_from = context_days(cap), newest_snapshots_from(paths.store)
    run, flushing = _open_run(paths, plan, store, binding, context, newest_from, options, say)
    result.updated_in_place = run.carry
    try:
        _set_variables(run.con, plan, cap, context, newest_from)
        _run_models(run, models, result)
        # build_info records the seconds up to here (the models); the checkpoint and the
        # swap that follow take a moment more, which the final `result.seconds` includes
        result.seconds = time.monotonic() - started
        _write_build_info(run.con, result, cadence, cap)
        run.con.execute("CHECKPOINT")
    except BaseException:
        _abandon(paths, plan, run)
        raise
    _commit(paths, plan, run, binding)
    _swap_in(paths, plan, flushing, retiring, say)
    store.sweep(RETAIN_SUPERSEDED_SECONDS, orphans=False)
    store.end(plan.build_id)
    result.seconds = time.monotonic() - started
    say(f"built {paths.db} in {result.seconds:.1f} s")
    return result


def _with_elapsed(say: Progress, started: float) -> Progress:
    """`say` with the seconds since the build started in front of each message."""
    def timed(msg: str) -> None:
        say(f"[{time.monotonic() - started:6.1f} s] {msg}")

    return timed


def _clear_leftovers(paths: Paths) -> Future[Any]:
    """Delete what a killed build left; the file the last build replaced goes in the
    background, while this one lists the history."""
    dbfile.remove_killed_build_files(paths)
    return dbfile.in_background(dbfile.delete_retired, paths)


def _plan(paths: Paths, models: list[Model], cadence: int, full: bool) -> _Plan:
    """The build's id, the last build's state, the sources listed once, and from them:
    full or incremental, and the window of days to recompute."""
    build_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    tmp_db = dbfile.building_file(paths, build_id)
    state = load_state(paths)
    signature = models_signature(models, cadence)
    full = full or state.get("signature") != signature
    copying = dbfile.start_copy(paths, tmp_db, full)
    listings, sources = list_sources(paths.store)
    if not any(sources.values()):
        dbfile.discard_copy(copying, tmp_db)
        raise WarehouseError(f"No snapshots or bills under {paths.parquet}: run "
                             "`vast-pipeline collect` or `vast-pipeline charges` first.")
    # Bills without snapshots build too (a team backfilling months of bills before its first
    # snapshot): the snapshot models read empty stand-in files (`sources._empty_source`) and
    # come out empty; the first snapshots then arrive as history that only grew at its end.
    reads = daily_reads(models)
    full, window, windows = plan_windows(state, sources, full, reads)
    return _Plan(build_id, tmp_db, state, signature, full, window, windows,
                 window_sources(reads), listings, sources, copying)


def _begin(paths: Paths, plan: _Plan, say: Progress) -> DailyStore:
    """The daily models' store, swept of what earlier builds left, marked as building."""
    store = DailyStore(paths, plan.state, plan.full)
    store.begin(plan.build_id, walk=not plan.state.get("builds_leave_markers"))
    say(f"build {plan.build_id}: {'full' if plan.full else 'incremental'}, "
        f"days {plan.window or 'none'}")
    return store


def _open_run(paths: Paths, plan: _Plan, store: DailyStore, binding: Binding, context: int,
              newest_from: date, options: _Options, say: Progress
              ) -> tuple[Run, Future[Any] | None]:
    """The connection the models run on, and whether it carries the last build's tables:
    the copy of the live warehouse when the history only grew at its end and the live file
    is the one the last build swapped in (then also the copy's flush to disk, started),
    else a fresh file (and the copy is deleted)."""
    con = None
    if not plan.full and only_appended(plan.state, plan.sources, plan.window_sources):
        con = dbfile.open_build_copy(paths, plan.tmp_db, plan.copying, plan.state,
                                     options.memory_limit, options.threads)
    carry = con is not None
    if not carry:
        dbfile.discard_copy(plan.copying, plan.tmp_db)
    # The copy leaves all of the file (100 MB at a year) to be written out, which the end
    # waited for (55 ms); the disk is idle while the models run. `sync_file` still syncs.
    flushing = dbfile.in_background(dbfile.sync_file, plan.tmp_db) if carry else None
    con = con or dbfile.connect_build(plan.tmp_db, paths, options.memory_limit, options.threads)
    recent = None
    if carry:
        since = min(plan.window[0] if plan.window else newest_from, newest_from)
        recent = RecentViews(con, since - timedelta(days=context), context, say)
    chunking = Chunking(options.chunk_days, options.threads or os.cpu_count() or 1)
    run = Run(con, store, plan.windows, plan.build_id, chunking, say, carry,
              binding.placeholders, binding.uniform_files, recent, plan.state.get("views", {}))
    return run, flushing


def _set_variables(con: Any, plan: _Plan, cap: int, context: int, newest_from: date) -> None:
    """The SQL variables every model may read (`getvariable(...)`)."""
    con.execute("SET VARIABLE cap_minutes = ?::INTEGER", [cap])
    con.execute("SET VARIABLE context_days = ?::INTEGER", [context])
    con.execute("SET VARIABLE newest_snapshot_days_from = ?::DATE", [newest_from])
    set_changed_from(con, plan.state, plan.sources, plan.window)


def _run_models(run: Run, models: list[Model], result: BuildResult) -> None:
    """Every model in build order; a failure is one sentence naming the model."""
    for model in models:
        sql = render_sql(model, run.placeholders)
        model_started = time.monotonic()
        try:
            result.rows_written[model.name] = run_model(run, model, sql)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise WarehouseError(
                f"Model {model.name} ({model.path.name}) failed: {first_line(exc)}."
            ) from exc
        result.model_seconds[model.name] = time.monotonic() - model_started


def _abandon(paths: Paths, plan: _Plan, run: Run) -> None:
    """Undo a failed build: its file, the model Parquet it published, its mark."""
    run.con.close()
    plan.tmp_db.unlink(missing_ok=True)
    run.store.discard_published()
    run.store.end(plan.build_id)
    shutil.rmtree(staging_dir(paths, plan.build_id), ignore_errors=True)


def _commit(paths: Paths, plan: _Plan, run: Run, binding: Binding) -> None:
    """Make the build's file durable, then write the state that describes it. From here
    the files the live (old) warehouse reads are in `superseded`."""
    run.con.close()
    dbfile.sync_file(plan.tmp_db)
    db_file = dbfile.file_identity(plan.tmp_db)  # the rename keeps it
    shutil.rmtree(staging_dir(paths, plan.build_id), ignore_errors=True)
    write_json_atomic(paths.state, {
        "version": STATE_VERSION, "signature": plan.signature, "build_id": plan.build_id,
        "sources": plan.sources, "manifest": run.store.manifest,
        "superseded": run.store.superseded, "schemas": binding.schemas,
        "builds_leave_markers": True, "db_file": db_file, "views": run.views_now,
    })


def _swap_in(paths: Paths, plan: _Plan, flushing: Future[Any] | None,
             retiring: Future[Any], say: Progress) -> None:
    """Rename the build's file over the live one (which keeps a second name, `retire`)."""
    say(f"state written, swapping in {paths.db}")
    dbfile.retire(paths.db, plan.build_id)
    os.replace(plan.tmp_db, paths.db)
    if flushing is not None:
        with contextlib.suppress(OSError):  # an early start only: the file was synced
            flushing.result()
    retiring.result()
