"""The DuckDB warehouse: builds the SQL models in `sql/` and answers read-only queries.

Why it is shaped this way:
- The model list and build order come from the SQL files themselves (a model depends on
  every other model whose name appears in its SQL), so no hand-kept list can drift.
- Each file says how it is materialized in its header (`-- materialized: view|table|daily`).
  `daily` models are the big ones (instance_intervals is one row per instance snapshot):
  they are written as Parquet partitioned by account and UTC day under
  `$HOME/parquet/models/<model>/account=<a>/day=<d>/`, and only the days touched by new
  snapshots are recomputed, so a build costs in proportion to the new data plus the small
  report tables, not to the whole history.
- Analysts must never be blocked or see a half-built warehouse: each build writes a new
  DuckDB file and atomically renames it over `warehouse.duckdb`. Views over daily models
  list their exact Parquet files (no glob), and files replaced by a build are kept for
  `RETAIN_SUPERSEDED_SECONDS`, so a session that still has the old file open keeps reading
  the old, consistent data.
"""

from __future__ import annotations

import csv
import graphlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from pipeline.alerts.engine import alert_log_source
from pipeline.datasets import CHARGE_FAMILY, SNAPSHOT_FAMILY, dataset, family
from pipeline.errors import WarehouseError
from pipeline.quality import CheckOutcome
from pipeline.resources import sql_dir
from pipeline.schema import SCHEMA_VERSION
from pipeline.storage import Store

# The history datasets (written by pipeline.history) that the models read.
SOURCE_SCHEMAS: dict[str, pa.Schema] = {d.name: d.schema for d in family(SNAPSHOT_FAMILY)}
# The billed-charges datasets (written by pipeline.charges). They feed only small table and
# view models, rebuilt on every build, so a bill refetch never recomputes daily models.
BILL_SOURCE_SCHEMAS: dict[str, pa.Schema] = {d.name: d.schema for d in family(CHARGE_FAMILY)}

SQL_DIR = sql_dir()
DB_NAME = "warehouse.duckdb"
STATE_NAME = "warehouse_state.json"
MODELS_SUBDIR = Path("parquet") / "models"
MATERIALIZATIONS = ("view", "table", "daily")
# Files a build replaced stay readable this long for sessions holding an older warehouse.
RETAIN_SUPERSEDED_SECONDS = 3600
DEFAULT_CHUNK_DAYS = 31
DEFAULT_MEMORY_LIMIT = "2GB"
STATE_VERSION = 1
STORAGE_COMPAT = "v1.4.0"

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Model:
    """One SQL model: its file, its SQL, the models it reads and its header comment."""

    name: str
    path: Path
    sql: str
    deps: tuple[str, ...]
    header: str
    materialized: str

    @property
    def sources(self) -> tuple[str, ...]:
        """The history datasets it reads: its `{{ <dataset>_glob }}` placeholders."""
        names = {m.group(1) for m in _PLACEHOLDER_RE.finditer(self.sql)}
        return tuple(sorted(n.removesuffix("_glob") for n in names if n.endswith("_glob")))


_TOKEN_RE = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")*")
    | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<other>\S)
    """,
    re.VERBOSE | re.DOTALL,
)
_PLACEHOLDER_RE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def sql_identifiers(sql: str) -> list[str]:
    """Lower-cased identifiers of `sql`, with comments and string literals skipped.

    Why: a model's dependencies are the model names it mentions as identifiers; words in
    comments or strings (paths, status values) must not count.
    """
    out: list[str] = []
    for match in _TOKEN_RE.finditer(sql):
        if match.lastgroup == "ident":
            out.append(match.group().lower())
        elif match.lastgroup == "quoted":
            out.append(match.group()[1:-1].replace('""', '"').lower())
    return out


def _relation_references(sql: str) -> list[str]:
    """Names used right after FROM/JOIN that are not table functions or subqueries."""
    tokens = [
        (m.lastgroup, m.group())
        for m in _TOKEN_RE.finditer(sql)
        if m.lastgroup != "comment"
    ]
    refs: list[str] = []
    for i, (kind, text) in enumerate(tokens[:-1]):
        if kind != "ident" or text.lower() not in ("from", "join"):
            continue
        if i > 0 and tokens[i - 1][1].lower() == "distinct":  # IS DISTINCT FROM x
            continue
        nxt_kind, nxt = tokens[i + 1]
        if nxt_kind not in ("ident", "quoted"):
            continue
        after = tokens[i + 2][1] if i + 2 < len(tokens) else ""
        if after in ("(", "."):
            continue
        refs.append(nxt.strip('"').lower())
    return refs


def _cte_names(sql: str) -> set[str]:
    """Names defined as `name as (` (CTEs), which FROM may use without being models."""
    idents = [
        (m.lastgroup, m.group().lower())
        for m in _TOKEN_RE.finditer(sql)
        if m.lastgroup != "comment"
    ]
    names = set()
    for i in range(len(idents) - 2):
        if idents[i][0] == "ident" and idents[i + 1][1] == "as" and idents[i + 2][1] == "(":
            names.add(idents[i][1])
    return names


def _header(sql: str, path: Path) -> str:
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    if not lines:
        raise WarehouseError(f"Model {path.name} must start with a comment stating its grain.")
    return "\n".join(lines)


def _materialization(header: str, path: Path) -> str:
    match = re.search(r"^materialized:\s*(\w+)", header, re.MULTILINE)
    kind = match.group(1).lower() if match else "view"
    if kind not in MATERIALIZATIONS:
        raise WarehouseError(
            f"Model {path.name} has unknown materialization {kind!r}; use one of "
            f"{', '.join(MATERIALIZATIONS)}."
        )
    return kind


def discover_models(sql_dir: Path | str = SQL_DIR) -> list[Model]:
    """All models of `sql_dir` in build order (dependencies first).

    Raises WarehouseError on a dependency cycle or a FROM/JOIN of a relation that is
    neither a model, a CTE nor a table function.
    """
    sql_dir = Path(sql_dir)
    paths = sorted(sql_dir.glob("*.sql"))
    if not paths:
        raise WarehouseError(f"No SQL models found in {sql_dir}.")
    names = {p.stem.lower() for p in paths}
    raw: dict[str, Model] = {}
    for path in paths:
        name = path.stem.lower()
        sql = path.read_text(encoding="utf-8")
        header = _header(sql, path)
        idents = set(sql_identifiers(sql))
        deps = tuple(sorted((idents & names) - {name}))
        unknown = set(_relation_references(sql)) - names - _cte_names(sql)
        if unknown:
            raise WarehouseError(
                f"Model {name} reads unknown relation(s) {', '.join(sorted(unknown))}; "
                f"known models: {', '.join(sorted(names))}."
            )
        raw[name] = Model(name, path, sql, deps, header, _materialization(header, path))
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(raw):
        sorter.add(name, *raw[name].deps)
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1]) if len(exc.args) > 1 else "?"
        raise WarehouseError(f"SQL models depend on each other in a cycle: {cycle}.") from exc
    return [raw[n] for n in order]


# --------------------------------------------------------------------------- paths, state


@dataclass(frozen=True)
class Paths:
    """Where everything of one home lives (absolute, so views work from any cwd)."""

    home: Path

    @property
    def db(self) -> Path:
        return self.home / DB_NAME

    @property
    def state(self) -> Path:
        return self.home / STATE_NAME

    @property
    def lock(self) -> Path:
        return self.home / ".warehouse.lock"

    @property
    def parquet(self) -> Path:
        return self.home / "parquet"

    @property
    def models(self) -> Path:
        return self.home / MODELS_SUBDIR


def _paths(home: Path | str) -> Paths:
    return Paths(Path(home).expanduser().resolve())


def _load_state(paths: Paths) -> dict[str, Any]:
    try:
        state = json.loads(paths.state.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return state if state.get("version") == STATE_VERSION else {}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
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
    rows_written: dict[str, int] = field(default_factory=dict)  # daily models only
    seconds: float = 0.0

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


def _changed_days(old: dict[str, Any], new: dict[str, dict[str, str]]) -> set[date]:
    changed: set[date] = set()
    for account in set(old) | set(new):
        a, b = old.get(account, {}), new.get(account, {})
        changed |= {date.fromisoformat(d) for d in set(a) | set(b) if a.get(d) != b.get(d)}
    return changed


def _plan_window(
    state: dict[str, Any], sources: dict[str, dict[str, dict[str, str]]], full: bool
) -> tuple[bool, tuple[date, date] | None]:
    """(full?, window of days to recompute) from the old and the new source fingerprints.

    The window starts at the last day with data before the earliest changed day (its last
    intervals end at the first new snapshot) and runs to the newest day, because the
    starting phase and incidents depend on what came before.
    """
    days = _all_days(sources.get(name, {}) for name in SOURCE_SCHEMAS)
    if not days:
        return full, None
    if full:
        return True, (min(days), max(days))
    changed: set[date] = set()
    for name in SOURCE_SCHEMAS:
        fingerprints = sources.get(name, {})
        changed |= _changed_days(state.get("sources", {}).get(name, {}), fingerprints)
    if not changed:
        return False, None
    first = min(changed)
    earlier = [d for d in days if d < first]
    start = max(earlier) if earlier else first
    return False, (start, max(max(days), max(changed)))


def _context_days(cap_minutes: int) -> int:
    """How many days an interval can reach past the day it starts (at least one)."""
    return max(1, math.ceil(cap_minutes / 1440))


def _sql_literal(text: str) -> str:
    return text.replace("'", "''")


def _empty_source(paths: Paths, table: str, schema: pa.Schema) -> str:
    """A zero-row partition file standing in for a source that has no files yet."""
    key = dataset(table).partition_key
    folder = paths.models / "_empty" / table / "account=_none_" / f"{key}=1970-01-01"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "part-0.parquet"
    if not target.exists():
        pq.write_table(schema.empty_table(), target)
    return str(target)


def _placeholders(paths: Paths, sources: dict[str, dict[str, dict[str, str]]]) -> dict[str, str]:
    """`{{ <table>_glob }}` of each history dataset the models read."""
    store = Store(paths.home)
    out = {}
    for table, schema in {**SOURCE_SCHEMAS, **BILL_SOURCE_SCHEMAS}.items():
        if sources.get(table):
            out[f"{table}_glob"] = store.parquet_glob(table)
        else:
            out[f"{table}_glob"] = _empty_source(paths, table, schema)
    out["alert_log_glob"] = alert_log_source(store)
    return out


def render_sql(model: Model, placeholders: dict[str, str]) -> str:
    """The model's SQL with `{{ name }}` placeholders replaced (paths, quoted for SQL)."""

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in placeholders:
            raise WarehouseError(f"Model {model.name} uses unknown placeholder {{{{ {key} }}}}.")
        return _sql_literal(placeholders[key])

    return _PLACEHOLDER_RE.sub(sub, model.sql)


def _connect_build(path: Path, paths: Paths, memory_limit: str, threads: int | None) -> Any:
    # The file is written in an older storage format so that the `duckdb` CLI analysts use
    # (PyPI's duckdb-cli, a release behind the Python package) can open it.
    con = duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_COMPAT})
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    tmp = paths.home / ".duckdb_tmp"
    con.execute(f"SET temp_directory = '{_sql_literal(str(tmp))}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


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
            rel_dir = Path(model) / file.parent.parent.name / file.parent.name
            (self.paths.models / rel_dir).mkdir(parents=True, exist_ok=True)
            rel = str(rel_dir / f"part-{build_id}-{moved}.parquet")
            os.replace(file, self.paths.models / rel)
            parts.setdefault(f"{account}|{day}", []).append(rel)
            moved += 1
        return moved

    def files(self, model: str) -> list[str]:
        parts = self.manifest.get(model, {})
        return [str(self.paths.models / rel) for key in sorted(parts) for rel in parts[key]]

    def sweep(self, retain_seconds: float) -> None:
        """Delete superseded files past retention, and orphans no state knows about."""
        now = time.time()
        for rel, when in list(self.superseded.items()):
            if now - when >= retain_seconds:
                (self.paths.models / rel).unlink(missing_ok=True)
                del self.superseded[rel]
        known = {rel for parts in self.manifest.values() for rels in parts.values() for rel in rels}
        known |= set(self.superseded)
        if not self.paths.models.is_dir():
            return
        for file in self.paths.models.glob("*/account=*/day=*/*.parquet"):
            rel = str(file.relative_to(self.paths.models))
            if rel not in known:
                file.unlink(missing_ok=True)
        for folder in self.paths.models.glob("_staging-*"):
            shutil.rmtree(folder, ignore_errors=True)


def _daily_view_sql(name: str, files: list[str]) -> str:
    listing = ", ".join(f"'{_sql_literal(f)}'" for f in files)
    return (
        f"CREATE VIEW {name} AS SELECT account, day, * EXCLUDE (account, day) "
        f"FROM read_parquet([{listing}], hive_partitioning = true, "
        "hive_types = {'account': VARCHAR, 'day': DATE})"
    )


def _chunks(window: tuple[date, date], chunk_days: int) -> list[tuple[date, date]]:
    days = _days_between(*window)
    groups = (days[i:i + chunk_days] for i in range(0, len(days), chunk_days))
    return [(g[0], g[-1]) for g in groups]


def _write_partitions(con: Any, sql: str, staging: Path) -> int:
    """Materialize one chunk, then write one Parquet file per (account, day).

    Why not COPY ... PARTITION_BY: on this workload it costs about twice the CPU of a
    temporary table plus one plain COPY per partition.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE _chunk AS {sql}")
    keys = con.execute("SELECT DISTINCT account, day FROM _chunk").fetchall()
    for account, day in keys:
        folder = staging / f"account={account}" / f"day={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        con.execute(
            "COPY (SELECT * EXCLUDE (account, day) FROM _chunk "
            f"WHERE account = '{_sql_literal(account)}' AND day = DATE '{day.isoformat()}') "
            f"TO '{_sql_literal(str(folder / 'data_0.parquet'))}' "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
    rows = con.execute("SELECT count(*) FROM _chunk").fetchone()[0]
    con.execute("DROP TABLE _chunk")
    return int(rows)


def _build_daily(
    con: Any, model: Model, sql: str, store: _DailyStore, window: tuple[date, date] | None,
    build_id: str, chunk_days: int, say: Progress,
) -> int:
    written = 0
    if window is not None:
        for start, end in _chunks(window, chunk_days):
            say(f"{model.name}: {start} .. {end}")
            staging = store.paths.models / f"_staging-{build_id}" / model.name / start.isoformat()
            staging.mkdir(parents=True, exist_ok=True)
            _set_window(con, start, end)
            written += _write_partitions(con, sql, staging)
            store.replace_days(model.name, staging, _days_between(start, end), build_id)
            shutil.rmtree(staging, ignore_errors=True)
    files = store.files(model.name)
    if files:
        con.execute(_daily_view_sql(model.name, files))
    else:
        _set_window(con, date(1970, 1, 1), date(1970, 1, 1))
        con.execute(f"CREATE TABLE {model.name} AS SELECT * FROM ({sql}) LIMIT 0")
    return written


def _run_model(
    con: Any, model: Model, sql: str, store: _DailyStore, window: tuple[date, date] | None,
    build_id: str, chunk_days: int, say: Progress,
) -> int:
    if model.materialized == "daily":
        return _build_daily(con, model, sql, store, window, build_id, chunk_days, say)
    say(f"{model.name} ({model.materialized})")
    kind = "VIEW" if model.materialized == "view" else "TABLE"
    con.execute(f"CREATE {kind} {model.name} AS {sql}")
    return 0


def _write_build_info(con: Any, result: BuildResult, cadence: int, cap: int) -> None:
    window = result.window or (None, None)
    con.execute(
        "CREATE TABLE build_info AS SELECT ?::VARCHAR AS build_id, now() AS built_at, "
        "?::INTEGER AS cadence_minutes, ?::INTEGER AS cap_minutes, ?::BOOLEAN AS full_build, "
        "?::DATE AS window_from, ?::DATE AS window_to, ?::INTEGER AS schema_version",
        [result.build_id, cadence, cap, result.full, window[0], window[1], SCHEMA_VERSION],
    )


def build(
    home: Path | str,
    *,
    cadence_minutes: int = 15,
    full: bool = False,
    progress: Progress | None = None,
    sql_dir: Path | str = SQL_DIR,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
    chunk_days: int = DEFAULT_CHUNK_DAYS,
    lock_timeout: float = 600.0,
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
    paths = _paths(home)
    if not paths.home.is_dir():
        raise WarehouseError(f"No data home at {paths.home}: run `vast-pipeline collect` first.")
    models = discover_models(sql_dir)
    try:
        with FileLock(str(paths.lock), timeout=lock_timeout):
            return _build_locked(paths, models, cadence_minutes, full, say,
                                 memory_limit, threads, chunk_days)
    except Timeout as exc:
        raise WarehouseError(
            f"Another build of {paths.db} is still running after {lock_timeout:.0f} s; "
            "try again when it has finished."
        ) from exc


def _build_locked(
    paths: Paths, models: list[Model], cadence: int, full: bool, say: Progress,
    memory_limit: str, threads: int | None, chunk_days: int,
) -> BuildResult:
    started = time.monotonic()
    outer = say

    def say(msg: str) -> None:
        outer(f"[{time.monotonic() - started:6.1f} s] {msg}")

    store = Store(paths.home)
    sources = {table: store.partition_fingerprints(table)
               for table in (*SOURCE_SCHEMAS, *BILL_SOURCE_SCHEMAS)}
    if not sources["snapshots"] and not sources["instance_snapshots"]:
        raise WarehouseError(
            f"No snapshots under {paths.parquet}: run `vast-pipeline collect` first."
        )
    state = _load_state(paths)
    signature = _models_signature(models, cadence)
    full = full or state.get("signature") != signature
    full, window = _plan_window(state, sources, full)
    build_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    store = _DailyStore(paths, state, full)
    store.sweep(RETAIN_SUPERSEDED_SECONDS)  # leftovers of a crashed build
    say(f"build {build_id}: {'full' if full else 'incremental'}, days {window or 'none'}")
    result = BuildResult(paths.db, build_id, full, window,
                         len(_days_between(*window)) if window else 0, [m.name for m in models])
    cap = 2 * cadence
    tmp_db = paths.home / f".{DB_NAME}.{build_id}.building"
    placeholders = _placeholders(paths, sources)
    con = _connect_build(tmp_db, paths, memory_limit, threads)
    try:
        con.execute("SET VARIABLE cap_minutes = ?::INTEGER", [cap])
        con.execute("SET VARIABLE context_days = ?::INTEGER", [_context_days(cap)])
        for model in models:
            sql = render_sql(model, placeholders)
            try:
                result.rows_written[model.name] = _run_model(
                    con, model, sql, store, window, build_id, chunk_days, say)
            except duckdb.Error as exc:
                raise WarehouseError(
                    f"Model {model.name} ({model.path.name}) failed: {first_line(exc)}."
                ) from exc
        _write_build_info(con, result, cadence, cap)
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        tmp_db.unlink(missing_ok=True)
        shutil.rmtree(paths.models / f"_staging-{build_id}", ignore_errors=True)
        raise
    con.close()
    shutil.rmtree(paths.models / f"_staging-{build_id}", ignore_errors=True)
    # State first: the files the live (old) warehouse reads are in `superseded` from here.
    _write_json_atomic(paths.state, {
        "version": STATE_VERSION, "signature": signature, "build_id": build_id,
        "sources": sources, "manifest": store.manifest, "superseded": store.superseded,
    })
    os.replace(tmp_db, paths.db)
    store.sweep(RETAIN_SUPERSEDED_SECONDS)
    result.seconds = time.monotonic() - started
    say(f"built {paths.db} in {result.seconds:.1f} s")
    return result


# --------------------------------------------------------------------------- query


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a query, in order."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


_ALLOWED_STATEMENTS = {"SELECT", "EXPLAIN"}


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, without a final period (DuckDB puts hints and
    context on later lines), for embedding in a one-sentence message."""
    lines = str(exc).strip().splitlines()
    return lines[0].strip().rstrip(".") if lines else type(exc).__name__


def open_read_only(home: Path | str) -> duckdb.DuckDBPyConnection:
    """A read-only connection to `$home/warehouse.duckdb` in UTC; the caller closes it.

    Read-only, so analysts' sessions and running builds are never disturbed. Raises
    WarehouseError (one sentence) when there is no warehouse yet or it cannot be opened.
    """
    paths = _paths(home)
    if not paths.db.is_file():
        raise WarehouseError(f"No warehouse at {paths.db}: run `vast-pipeline build` first.")
    try:
        con = duckdb.connect(str(paths.db), read_only=True)
    except duckdb.Error as exc:
        raise WarehouseError(
            f"Cannot open {paths.db} read-only ({first_line(exc)}); if another program has "
            "it open for writing, close that and try again."
        ) from exc
    con.execute("SET TimeZone = 'UTC'")
    return con


def _known_tables(con: Any) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows]


def _explain_error(con: Any, exc: duckdb.Error) -> str:
    message = first_line(exc)
    missing = re.search(r"Table with name (\S+) does not exist", message)
    if missing:
        known = ", ".join(_known_tables(con))
        return f"Table '{missing.group(1)}' does not exist; known tables: {known}."
    if isinstance(exc, duckdb.ParserException):
        return f"The SQL could not be parsed: {message}."
    return f"The query failed: {message}."


def _check_read_only(con: Any, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise WarehouseError(_explain_error(con, exc)) from exc
    if not statements:
        raise WarehouseError("The query is empty; give one SELECT statement.")
    for st in statements:
        kind = st.type.name
        if kind not in _ALLOWED_STATEMENTS:
            raise WarehouseError(
                f"Only SELECT queries are allowed here: the warehouse is read-only "
                f"(refused a {kind} statement)."
            )


def query(home: Path | str, sql: str, *, params: Sequence[Any] | dict[str, Any] | None = None
          ) -> QueryResult:
    """Run read-only SQL against the warehouse (SELECT/EXPLAIN only; file opened read-only).

    Why two guards: read-only mode stops DDL/DML on the warehouse, and the statement check
    also stops COPY/ATTACH/SET, which could write files or reach other databases.
    """
    con = open_read_only(home)
    try:
        _check_read_only(con, sql)
        try:
            cursor = con.execute(sql, params) if params is not None else con.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall() if cursor.description else []
        except duckdb.Error as exc:
            raise WarehouseError(_explain_error(con, exc)) from exc
        return QueryResult(columns, rows)
    finally:
        con.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_result(result: QueryResult, fmt: str = "table") -> str:
    """Render a result as an aligned text `table`, `csv` (header row first) or `json`."""
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([[_cell(v) for v in row] for row in result.rows])
        return buf.getvalue()
    if fmt == "json":
        records = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        return json.dumps(records, default=str, indent=1)
    if fmt != "table":
        raise WarehouseError(f"Unknown format {fmt!r}; use table, csv or json.")
    cells = [[("NULL" if v is None else _cell(v)) for v in row] for row in result.rows]
    widths = [len(c) for c in result.columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    line = "  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    count = f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})"
    return "\n".join([line, rule, *body, count]) + "\n"


# --------------------------------------------------------------------------- checks


# Days missing from an account's bill log between its first and last fetched day: a
# hole means a day's spend is in no bill (a failed or skipped fetch).
_BILL_HOLES_SQL = """
    SELECT count(*) FROM (
        SELECT account, unnest(generate_series(min(day), max(day), INTERVAL 1 DAY))::DATE
            AS day
        FROM billed_days GROUP BY account
    ) AS expected
    ANTI JOIN billed_days USING (account, day)"""

# (check name, the table it guards, SQL counting offending rows, what those rows are)
_CHECKS: tuple[tuple[str, str, str, str], ...] = (
    ("costs_non_negative", "cost_daily",
     "SELECT count(*) FROM cost_daily WHERE gpu_cost < 0 OR storage_cost < 0 OR total_cost < 0",
     "cost_daily rows with a negative cost"),
    ("interval_costs_non_negative", "instance_intervals",
     "SELECT count(*) FROM instance_intervals WHERE gpu_cost < 0 OR storage_cost < 0 "
     "OR hours <= 0",
     "instance_intervals rows with a negative cost or non-positive hours"),
    ("availability_in_range", "reliability_by_instance",
     "SELECT (SELECT count(*) FROM reliability_by_instance WHERE availability NOT BETWEEN 0 AND 1)"
     " + (SELECT count(*) FROM reliability_daily WHERE availability NOT BETWEEN 0 AND 1)",
     "rows with availability outside [0, 1]"),
    ("bill_days_complete", "billed_daily", _BILL_HOLES_SQL,
     "days missing from a bill log between its first and last fetched day"),
)
# Which table each mart check guards (Dagster attaches the check to that asset).
MART_CHECKS: dict[str, str] = {name: table for name, table, _sql, _what in _CHECKS}
MART_CHECKS["cost_daily_equals_intervals"] = "cost_daily"


def check_marts(home: Path | str) -> list[CheckOutcome]:
    """Invariants of the marts: non-negative costs, availability in [0, 1], no day missing
    from a bill log between its first and last fetched day, and the sum of
    cost_daily equal to the sum of instance_intervals (the midnight split loses nothing)."""
    con = open_read_only(home)
    try:
        out = []
        for name, _table, sql, what in _CHECKS:
            bad = con.execute(sql).fetchone()[0]
            out.append(CheckOutcome(name, bad == 0, f"{bad} {what}"))
        daily, intervals = con.execute(
            "SELECT (SELECT coalesce(sum(total_cost), 0) FROM cost_daily), "
            "(SELECT coalesce(sum(total_cost), 0) FROM instance_intervals)"
        ).fetchone()
        ok = math.isclose(daily, intervals, rel_tol=1e-6, abs_tol=1e-9)
        out.append(CheckOutcome(
            "cost_daily_equals_intervals", ok,
            f"sum(cost_daily.total_cost) = {daily:.6f}, "
            f"sum(instance_intervals.total_cost) = {intervals:.6f}",
        ))
        return out
    finally:
        con.close()
