"""Model runners: how each kind of model is materialized in the build's DuckDB file.

Why its own module: a model is a view, a table, a table macro, a table updated in place
(`-- incremental rows:`), or a daily model (Parquet by account and day, written chunk by
chunk and read back as a view or a table); each has its runner here, and they share one
`Run` of the build. Which runner a model gets comes from its header
(`pipeline.warehouse.models`), never from its name.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.warehouse.chunks import (
    Chunking,
    ChunkWrite,
    as_duckdb_writes,
    chunks,
    publish_chunk,
    start_writes,
)
from pipeline.warehouse.dailystore import DailyStore, daily_select_sql, staging_dir
from pipeline.warehouse.models import Model, render_sql_over_files
from pipeline.warehouse.sources import RecentViews
from pipeline.warehouse.state import Progress
from pipeline.warehouse.window import days_between


def _set_window(con: Any, start: date, end: date) -> None:
    """The days the next query of a daily model computes (`build_from` .. `build_to`)."""
    con.execute("SET VARIABLE build_from = ?::DATE", [start])
    con.execute("SET VARIABLE build_to = ?::DATE", [end])


@dataclass
class Run:
    """What every model of one build shares."""

    con: Any
    store: DailyStore
    # per daily model, the days it recomputes (`window.plan_windows`)
    windows: dict[str, tuple[date, date] | None]
    build_id: str
    chunking: Chunking
    say: Progress
    # a copy of the previous warehouse whose tables are updated in place (see `Incremental`)
    carry: bool
    placeholders: dict[str, str]
    # snapshot datasets whose files all share one schema, with their files as (ISO day, uri)
    uniform_files: dict[str, list[tuple[str, str]]]
    recent: RecentViews | None
    # digests of the SQL of the views of history files, in the previous build and this one
    views_before: dict[str, str]
    views_now: dict[str, str] = field(default_factory=dict)


def _build_daily(run: Run, model: Model, sql: str) -> int:
    """Query the window chunk by chunk; pyarrow writes a chunk's day files on a pool while
    DuckDB computes the next chunk (both release the GIL), so the two overlap.

    A model with `-- warehouse: table` is also a table of all its days in the warehouse:
    updated chunk by chunk in a copy of the previous warehouse, else read once from its
    files at the end."""
    con, store, build_id = run.con, run.store, run.build_id
    in_place = run.carry and model.warehouse_table and _is_table(con, model.name)
    written, window = 0, run.windows.get(model.name)
    if window is not None:
        with ThreadPoolExecutor(max_workers=run.chunking.writers) as pool:
            pending: ChunkWrite | None = None
            for start, end in chunks(window, run.chunking.days):
                run.say(f"{model.name}: {start} .. {end}")
                staging = staging_dir(store.paths, build_id) / model.name / start.isoformat()
                _set_window(con, start, end)
                table = as_duckdb_writes(con.sql(sql))
                if in_place:
                    _replace_table_days(con, model.name, table, start, end)
                if pending is not None:
                    written += publish_chunk(pending, store, model.name, build_id)
                pending = start_writes(pool, table, staging, days_between(start, end))
                del table  # the pending writes hold what they need
            if pending is not None:
                written += publish_chunk(pending, store, model.name, build_id)
    if in_place:
        return written
    files = store.files(model.name)
    _drop_previous(con, model.name)
    if files:
        kind = "TABLE" if model.warehouse_table else "VIEW"
        con.execute(f"CREATE {kind} {model.name} AS {daily_select_sql(files)}")
        if run.recent is not None and not model.warehouse_table:
            run.recent.add(model.name, daily_select_sql, store.day_files(model.name))
    else:
        _set_window(con, date(1970, 1, 1), date(1970, 1, 1))
        con.execute(f"CREATE TABLE {model.name} AS SELECT * FROM ({sql}) LIMIT 0")
    return written


def run_model(run: Run, model: Model, sql: str) -> int:
    """Run one model with its header's DuckDB settings, reset afterwards so that they
    change no other model's plan."""
    for name, value in model.settings:
        run.con.execute(f"SET {name} = {value}")
    try:
        return _materialize(run, model, sql)
    finally:
        for name, _value in model.settings:
            run.con.execute(f"RESET {name}")


def _materialize(run: Run, model: Model, sql: str) -> int:
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


def _create_view(run: Run, model: Model, sql: str) -> None:
    """Create a view model; a view of one snapshot dataset's files gets its twin over the
    recent days too, in a build that updates in place (`RecentViews`).

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


def _update_in_place(run: Run, model: Model, sql: str) -> int:
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

