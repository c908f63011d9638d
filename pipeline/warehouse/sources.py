"""Source binding: how the models' `{{ <dataset>_glob }}` placeholders meet the history.

Why its own module: what a model reads is decided here, once per build, from one listing
of each history dataset: the fingerprints window planning compares, the glob of each
dataset (or a zero-row stand-in file when it has none yet), whether its files share one
Parquet schema (so views can skip `union_by_name`), and, in a build that updates in place,
temporary views over the recent days' files only (`RecentViews`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.storage.alertlog import alert_log_source
from pipeline.storage.datasets import DATASETS, dataset
from pipeline.storage.store import Store
from pipeline.warehouse.paths import Paths
from pipeline.warehouse.state import Fingerprints, Progress

# The history datasets the models may read (`{{ <name>_glob }}` in their SQL): every
# Parquet dataset of a family in the registry, of an account or of none.
SOURCE_SCHEMAS: dict[str, pa.Schema] = {
    d.name: d.schema for d in DATASETS.values() if d.family and d.schema is not None
}

# Per history dataset: {(account, ISO day): the visible Parquet files of that partition}
# (`Store.partition_files`: account NO_ACCOUNT for a dataset of no account).
Listings = dict[str, dict[tuple[str, str], list[Any]]]
# Per history dataset: {"account|day": [fingerprint, sorted schema digests]}.
SchemaCache = dict[str, dict[str, list[Any]]]


def list_sources(store: Store) -> tuple[Listings, Fingerprints]:
    """One listing of each history dataset, and the fingerprints of its partitions."""
    listings = {table: store.partition_files(table) for table in SOURCE_SCHEMAS}
    return listings, {table: Store.fingerprints(listing) for table, listing in listings.items()}


@dataclass(frozen=True)
class Binding:
    """What the models of one build read: their placeholders' values, the files of the
    snapshot datasets that share one schema (for `RecentViews`), and the schema digests
    to keep in the state for the next build."""

    placeholders: dict[str, str]
    uniform_files: dict[str, list[tuple[str, str]]]
    schemas: SchemaCache


def bind_sources(paths: Paths, listings: Listings, sources: Fingerprints,
                 state: dict[str, Any], window_sources: Sequence[str]) -> Binding:
    """The `Binding` of this build's sources, reusing the last build's schema digests;
    `window_sources` are the datasets the daily models read (`window.daily_reads`)."""
    uniform, schemas = _uniform_schemas(paths.store, listings, sources,
                                        state.get("schemas", {}))
    return Binding(_placeholders(paths, sources, uniform),
                   _uniform_window_files(paths.store, listings, uniform, window_sources),
                   schemas)


def _empty_source(paths: Paths, table: str, schema: pa.Schema) -> str:
    """A zero-row partition file standing in for a source that has no files yet, in the
    dataset's own partition layout (`account=` first or not), so that a view over it has
    the columns it will have over real files."""
    spec = dataset(table)
    levels = ["account=_none_" if column == "account" else f"{column}=1970-01-01"
              for column in spec.partition_columns]
    target = "/".join([paths.models, "_empty", table, *levels, "part-0.parquet"])
    if not paths.store.exists(target):
        paths.store.write_parquet_atomic(target, schema.empty_table())
    return paths.store.uri(target)


def _placeholders(paths: Paths, sources: Fingerprints,
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


def _uniform_schemas(store: Store, listings: Listings, sources: Fingerprints,
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


def _uniform_window_files(store: Store, listings: Listings, uniform: dict[str, bool],
                          window_sources: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """(ISO day, uri) of each file of the datasets the daily models read whose files share
    one schema: what `RecentViews` lists (a union by name over some days could lack a
    column)."""
    return {table: [(day, store.uri(f.path))
                    for (_account, day), files in sorted(listings[table].items()) for f in files]
            for table in window_sources if uniform.get(table) and listings[table]}


def _schema_digest(store: Store, path: str) -> str:
    schema = pq.read_schema(path, filesystem=store.fs).remove_metadata()
    return hashlib.sha1(schema.to_string().encode()).hexdigest()[:16]


class RecentViews:
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
