"""The SQL models of `sql/`: discovery, build order, header contract and rendering.

Why the model list and build order come from the SQL files themselves: a model depends on
every other model whose name appears in its SQL as an identifier, so no hand-kept list can
drift. Each file starts with a comment stating its grain and says how it is materialized
(`-- materialized: view|table|daily|macro`). The SQL tokenizer here is also what the read-only
query guard (`pipeline.warehouse.query`) uses to look inside EXPLAIN.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import WarehouseError
from pipeline.core.resources import sql_dir
from pipeline.storage.store import sql_file_list

SQL_DIR = sql_dir()
MATERIALIZATIONS = ("view", "table", "daily", "macro")
# How many cadences one snapshot speaks for (see `interval_cap_minutes`).
CAP_CADENCES = 2


def interval_cap_minutes(cadence_minutes: int) -> int:
    """How long one snapshot speaks for: the one bound behind two rules.

    `instance_intervals` caps an interval at this many minutes past its snapshot (the
    build passes it to the SQL as `getvariable('cap_minutes')`; time past it is
    unobserved), and the `fresh_snapshots` check calls an account stale once its newest
    snapshot is older than this: from then on the account has unobserved time. Twice the
    cadence, so one late or failed run is still observed; a gap of exactly the cap is
    neither capped nor stale.
    """
    return CAP_CADENCES * cadence_minutes


def sql_literal(text: str) -> str:
    """`text` escaped for use inside a single-quoted SQL string literal."""
    return text.replace("'", "''")


@dataclass(frozen=True)
class Incremental:
    """How an incremental build updates a whole-history table instead of rebuilding it.

    `rows`: a predicate over the table's columns, true for every row the new history can
    change (it may use `getvariable('changed_from')`, the first recomputed day, and
    `getvariable('<dataset>_changed_from')`, the first changed day of one history dataset,
    of an account or of none). The build deletes the old rows where it holds and inserts
    the model's new rows where it holds; the header must say why every other row is
    unchanged. `day`: an expression giving a row's day, so that the build can tell the SQL
    the earliest day it recomputes (`getvariable('recompute_from')`: the earliest of
    `changed_from`, the first day whose bill changed and the day of the old rows it
    selects; 0001-01-01 in a full build).

    What any model may read in such a build: the views of the history the daily models
    read (the snapshot family's, and any other a daily model reads) and the daily models'
    views show only the days from the earliest of `build_from`, `newest_snapshot_days_from`
    and each updated table's `recompute_from`, less `context_days` (they are bound to those
    days' files alone, `pipeline.warehouse.sources.RecentViews`); a model must read nothing
    older.
    """

    rows: str
    day: str


@dataclass(frozen=True)
class Model:
    """One SQL model: its file, its SQL, the models it reads and its header comment."""

    name: str
    path: Path
    sql: str
    deps: tuple[str, ...]
    header: str
    materialized: str
    # DuckDB settings the build applies while this model runs (`-- duckdb: name = value`).
    settings: tuple[tuple[str, str], ...] = ()
    # A table an incremental build updates in place (`-- incremental:` lines), else None.
    incremental: Incremental | None = None
    # A daily model also kept as a warehouse table of all its days (`-- warehouse: table`).
    warehouse_table: bool = False
    # A macro's parameters as written in its `-- macro: name(...)` line, else "".
    parameters: str = ""

    def call(self, *args: str) -> str:
        """The FROM-clause text that reads the model: its name, or for a macro (a table
        macro: a mart over a window the reader chooses) a call with `args` (SQL text)."""
        return f"{self.name}({', '.join(args)})" if self.materialized == "macro" else self.name

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


def sql_tokens(sql: str) -> Iterator[tuple[str, str, int]]:
    """(kind, text, offset) of each token of `sql` but comments; kind is one of `string`,
    `quoted`, `ident` or `other` (one punctuation character)."""
    for match in _TOKEN_RE.finditer(sql):
        if match.lastgroup != "comment":
            yield match.lastgroup or "other", match.group(), match.start()


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
    tokens = [(kind, text) for kind, text, _ in sql_tokens(sql)]
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
    idents = [(kind, text.lower()) for kind, text, _ in sql_tokens(sql)]
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


# `-- duckdb: <setting> = <value>`: a value is a number, a word or one quoted string.
_SETTING_RE = re.compile(
    r"^duckdb:\s*(?P<name>[a-z_]+)\s*=\s*(?P<value>'[^']*'|[A-Za-z0-9_.]+)\s*$", re.MULTILINE)


def _settings(header: str, path: Path) -> tuple[tuple[str, str], ...]:
    """The header's DuckDB settings, for a model whose plan needs one (say why beside it)."""
    lines = [line for line in header.splitlines() if line.startswith("duckdb:")]
    found = [(m.group("name"), m.group("value")) for m in _SETTING_RE.finditer(header)]
    if len(found) != len(lines):
        raise WarehouseError(
            f"Model {path.name} has a malformed `-- duckdb:` line; write "
            "`-- duckdb: <setting> = <value>`, e.g. `-- duckdb: disabled_optimizers = "
            "'join_order'`."
        )
    return tuple(found)


def _incremental(header: str, path: Path, materialized: str) -> Incremental | None:
    """The `-- incremental rows: <predicate>` and `-- incremental day: <expression>` lines."""
    found = {key: re.findall(rf"^incremental {key}:\s*(.+)$", header, re.MULTILINE)
             for key in ("rows", "day")}
    if not any(found.values()):
        if re.search(r"^incremental", header, re.MULTILINE):
            raise WarehouseError(f"Model {path.name} has a malformed `-- incremental` line; "
                                 "write `-- incremental rows:` and `-- incremental day:`.")
        return None
    if [len(v) for v in found.values()] != [1, 1] or materialized != "table":
        raise WarehouseError(
            f"Model {path.name}: an incremental model is a table with one "
            "`-- incremental rows: <predicate>` and one `-- incremental day: <expression>` "
            "line."
        )
    return Incremental(found["rows"][0].strip(), found["day"][0].strip())


def _warehouse_table(header: str, path: Path, materialized: str) -> bool:
    """`-- warehouse: table`: a daily model read whole by other models is kept as a table
    too, because reading its one file per day costs about 10x reading one table."""
    values = re.findall(r"^warehouse:\s*(.*)$", header, re.MULTILINE)
    if not values:
        return False
    if values != ["table"] or materialized != "daily":
        raise WarehouseError(f"Model {path.name}: `-- warehouse: table` is the only form of "
                             "that line, and only for a daily model.")
    return True


_MACRO_RE = re.compile(r"^macro:\s*(?P<name>\w+)\((?P<params>[^)]*)\)\s*$", re.MULTILINE)


def _macro_parameters(header: str, path: Path, materialized: str) -> str:
    """The parameter list of a `-- materialized: macro` model (`-- macro: name(a, b := NULL)`).

    Why macros: a report figure over a window (a sum, and the ratio of two sums) is defined
    once in SQL with the window as parameters, so the reports, the demo and an analyst read
    the same column instead of each writing its own aggregate."""
    match = _MACRO_RE.search(header)
    if materialized != "macro":
        if match:
            raise WarehouseError(f"Model {path.name}: a `-- macro:` line needs "
                                 "`-- materialized: macro`.")
        return ""
    if not match or match.group("name").lower() != path.stem.lower():
        raise WarehouseError(f"Model {path.name}: a macro model states its parameters as "
                             f"`-- macro: {path.stem}(day_from, day_to, account_name := NULL)`.")
    return match.group("params").strip()


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
        materialized = _materialization(header, path)
        incremental = _incremental(header, path, materialized)
        # the models its incremental predicate reads are built before it, too
        idents = set(sql_identifiers(sql + "\n" + (incremental.rows if incremental else "")))
        deps = tuple(sorted((idents & names) - {name}))
        unknown = set(_relation_references(sql)) - names - _cte_names(sql)
        if unknown:
            raise WarehouseError(
                f"Model {name} reads unknown relation(s) {', '.join(sorted(unknown))}; "
                f"known models: {', '.join(sorted(names))}."
            )
        raw[name] = Model(name, path, sql, deps, header, materialized, _settings(header, path),
                          incremental, _warehouse_table(header, path, materialized),
                          _macro_parameters(header, path, materialized))
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(raw):
        sorter.add(name, *raw[name].deps)
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1]) if len(exc.args) > 1 else "?"
        raise WarehouseError(f"SQL models depend on each other in a cycle: {cycle}.") from exc
    return [raw[n] for n in order]



def render_sql(model: Model, placeholders: dict[str, str]) -> str:
    """The model's SQL with `{{ name }}` placeholders replaced (paths, quoted for SQL)."""

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in placeholders:
            raise WarehouseError(f"Model {model.name} uses unknown placeholder {{{{ {key} }}}}.")
        return sql_literal(placeholders[key])

    return _PLACEHOLDER_RE.sub(sub, model.sql)


def render_sql_over_files(model: Model, placeholders: dict[str, str],
                          files: dict[str, list[str]]) -> str:
    """The model's SQL reading exactly `files` of each dataset named there instead of the
    `{{ <dataset>_glob }}` of its whole history (a list of files, not a glob: readers that
    need only some days bind in proportion to those days)."""
    markers = {name: f"__vast_pipeline_files_{name}__" for name in files}
    sql = render_sql(model, placeholders | {f"{n}_glob": m for n, m in markers.items()})
    for name, marker in markers.items():
        sql = sql.replace(f"'{marker}'", sql_file_list(files[name]))
    return sql
