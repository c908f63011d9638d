"""Read-only access to the warehouse: `vast-pipeline sql`, the reports and the mart checks.

Why two guards, and why the connection is its own:
- The connection itself cannot change anything it was not given: it is a private in-memory
  DuckDB that attaches `warehouse.duckdb` READ_ONLY, may touch files only under
  `$HOME/parquet/` (the history and the daily models the views read), and has its
  configuration locked, so no SET, INSTALL or LOAD and no file outside that folder
  (`read_text('/etc/...')`, `COPY ... TO '/tmp/...'`) gets through, whatever the SQL.
- The statement check then lets only SELECT (and EXPLAIN of a SELECT) run, which stops
  what the connection would still allow inside `$HOME/parquet/`: COPY, EXPORT, ATTACH.
- Being a separate in-memory instance, it never shares settings with a `duckdb.connect`
  an analyst opened on the same file in the same process: their session is unaffected.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline.alerts.engine import alert_log_dir
from pipeline.errors import WarehouseError, first_line
from pipeline.models import sql_literal, sql_tokens
from pipeline.objectstore import register_on
from pipeline.warehouse import home_paths

CATALOG = "warehouse"  # the name a plain `duckdb warehouse.duckdb` session gives it too

# Why each kind of statement is refused (DuckDB statement type -> the reason).
_REFUSED_BECAUSE = {
    "COPY": "it would read or write files",
    "EXPORT": "it would write files",
    "ATTACH": "it would open another database",
    "DETACH": "it would close the warehouse",
    "LOAD": "it would install or load an extension",
    "SET": "it would change a setting",
    "PRAGMA": "it would run a pragma (use SHOW TABLES or DESCRIBE <table> to look around)",
    "CALL": "it would call a procedure",
}


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a query, in order."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def open_read_only(home: Path | str) -> duckdb.DuckDBPyConnection:
    """A confined, read-only connection to `$home/warehouse.duckdb` in UTC; the caller
    closes it. Raises WarehouseError (one sentence) when there is no warehouse yet or it
    cannot be opened."""
    paths = home_paths(home)
    if not paths.db.is_file():
        raise WarehouseError(f"No warehouse at {paths.db}: run `vast-pipeline build` first.")
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH '{sql_literal(str(paths.db))}' AS {CATALOG} (READ_ONLY)")
        con.execute(f"USE {CATALOG}")
        register_on(con, paths.home)  # views over s3:// read through an fsspec filesystem
        _confine(con, [paths.parquet, alert_log_dir(paths.store)],
                 paths.db.parent / ".duckdb_tmp")
    except duckdb.Error as exc:
        con.close()
        raise WarehouseError(
            f"Cannot open {paths.db} read-only ({first_line(exc)}); if another program has "
            "it open for writing, close that and try again."
        ) from exc
    return con


def _confine(con: duckdb.DuckDBPyConnection, readable: list[str], spill: Path) -> None:
    """Files only under `readable` (spills under `spill`), no extensions, settings locked.
    The Parquet and the alert log (read live by the alert views) are readable."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET temp_directory = '{sql_literal(str(spill))}'")
    folders = ", ".join(f"'{sql_literal(str(r))}/'" for r in readable)
    con.execute(f"SET allowed_directories = [{folders}]")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET allow_persistent_secrets = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _known_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_catalog = current_database() ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows]


def _explain_error(con: duckdb.DuckDBPyConnection, exc: duckdb.Error) -> str:
    message = first_line(exc)
    missing = re.search(r"Table with name (\S+) does not exist", message)
    if missing:
        known = ", ".join(_known_tables(con))
        return f"Table '{missing.group(1)}' does not exist; known tables: {known}."
    if isinstance(exc, duckdb.ParserException):
        return f"The SQL could not be parsed: {message}."
    if isinstance(exc, duckdb.PermissionException):
        return (f"Refused: `vast-pipeline sql` reads only the warehouse and the Parquet "
                f"under the data home ({message}); if the data home moved, run "
                "`vast-pipeline build` once.")
    return f"The query failed: {message}."


def _explained(sql: str) -> str | None:
    """The statement an `EXPLAIN [ANALYZE | (options)] <statement>` explains, or None."""
    tokens = list(sql_tokens(sql))
    if not tokens or tokens[0][1].upper() != "EXPLAIN":
        return None
    rest = tokens[1:]
    if rest and rest[0][1].upper() in ("ANALYZE", "ANALYSE"):
        rest = rest[1:]
    elif rest and rest[0][1] == "(":
        depth = 0
        for n, (_kind, text, _at) in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(text, 0)
            if depth == 0:
                rest = rest[n + 1:]
                break
    return sql[rest[0][2]:] if rest else None


def _refusal(con: duckdb.DuckDBPyConnection, statement: Any) -> str | None:
    """Why `statement` may not run here (one sentence), or None when it is a read."""
    kind = statement.type.name
    if kind == "SELECT":
        return None
    if kind == "EXPLAIN":
        inner = _explained(statement.query)
        try:
            kinds = [s.type.name for s in con.extract_statements(inner)] if inner else []
        except duckdb.Error:
            kinds = []
        if kinds == ["SELECT"]:
            return None
        return ("Refused an EXPLAIN of something other than a SELECT: `vast-pipeline sql` "
                "is read-only, and EXPLAIN ANALYZE runs the statement it explains.")
    reason = _REFUSED_BECAUSE.get(kind, "it would change the warehouse")
    return (f"Refused a {kind} statement: `vast-pipeline sql` is read-only and runs only "
            f"SELECT (and EXPLAIN of a SELECT); {reason}.")


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise WarehouseError unless every statement of `sql` is a read."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise WarehouseError(_explain_error(con, exc)) from exc
    if not statements:
        raise WarehouseError("The query is empty; give one SELECT statement.")
    for statement in statements:
        refusal = _refusal(con, statement)
        if refusal:
            raise WarehouseError(refusal)


def query(home: Path | str, sql: str, *, params: Sequence[Any] | dict[str, Any] | None = None
          ) -> QueryResult:
    """Run read-only SQL against the warehouse on a confined connection (see the module
    docstring); every failure is a WarehouseError of one sentence."""
    con = open_read_only(home)
    try:
        check_read_only(con, sql)
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
