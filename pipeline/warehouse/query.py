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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline.core.errors import QueryError, WarehouseError, first_line
from pipeline.storage.alertlog import alert_log_dir
from pipeline.storage.objectstore import register_on
from pipeline.warehouse.models import sql_literal, sql_tokens
from pipeline.warehouse.paths import home_paths

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


# The kinds of DuckDB error that mean the SQL as written cannot run (the user corrects it,
# exit 2); any other failure (I/O, memory, a value the data holds) is a run-time one.
_SQL_MISTAKES = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
                 duckdb.PermissionException)
# At most this many of DuckDB's candidate functions are quoted in a message.
_MAX_CANDIDATES = 6


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a query, in order; `sql` is the statement that gave them,
    the `number`th of the query's `count` statements."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    sql: str = ""
    number: int = 1
    count: int = 1


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


def duckdb_hint(exc: BaseException) -> str:
    """DuckDB's hints below the first line of its message (`Did you mean "estimated_cost_daily"?`,
    `Candidate bindings: ...`, candidate functions), as one clause; the `LINE 1:` excerpt
    and its caret are left out. Empty when DuckDB gave none."""
    hints: list[tuple[str, list[str]]] = []  # a hint line, and the items it lists below it
    for raw in str(exc).strip().splitlines()[1:]:
        text = " ".join(raw.split())
        if not text or text.startswith("LINE ") or set(text) <= {"^"}:
            continue
        if hints and raw[:1].isspace() and not text.endswith(":"):
            hints[-1][1].append(text)
        else:
            hints.append((text, []))
    return "; ".join(_hint_text(line, items) for line, items in hints)


def _hint_text(line: str, items: list[str]) -> str:
    """`line` (lower-cased first letter, no final period) with its first few `items`."""
    shown = ", ".join(items[:_MAX_CANDIDATES])
    if len(items) > _MAX_CANDIDATES:
        shown += f" and {len(items) - _MAX_CANDIDATES} more"
    text = f"{line} {shown}" if shown else line
    return text[:1].lower() + text[1:].removesuffix(".")


def _explain_error(con: duckdb.DuckDBPyConnection, exc: duckdb.Error) -> str:
    message = first_line(exc).rstrip("!")
    hint = duckdb_hint(exc)
    aside = f" ({hint})" if hint else ""
    missing = re.search(r"Table with name (\S+) does not exist", message)
    if missing:
        known = ", ".join(_known_tables(con))
        return f"Table '{missing.group(1)}' does not exist{aside}; known tables: {known}."
    if isinstance(exc, duckdb.ParserException):
        return f"The SQL could not be parsed: {message}{aside}."
    if isinstance(exc, duckdb.PermissionException):
        return (f"Refused: `vast-pipeline sql` reads only the warehouse and the Parquet "
                f"under the data home ({message}); if the data home moved, run "
                "`vast-pipeline build` once.")
    return f"The query failed: {message}{aside}."


def _query_error(con: duckdb.DuckDBPyConnection, exc: duckdb.Error,
                 where: str = "") -> WarehouseError:
    """The one-sentence error of a failed statement: a QueryError (exit 2) when the SQL as
    written cannot run, else a run-time WarehouseError; `where` says which statement."""
    kind = QueryError if isinstance(exc, _SQL_MISTAKES) else WarehouseError
    return kind(where + _explain_error(con, exc))


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


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    """The statements of `sql`; QueryError unless every one of them is a read."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise _query_error(con, exc) from exc
    if not statements:
        raise QueryError("The query is empty; give one SELECT statement.")
    for statement in statements:
        refusal = _refusal(con, statement)
        if refusal:
            raise QueryError(refusal)
    return statements


def _run(con: duckdb.DuckDBPyConnection, statement: Any, params: Any, number: int = 1,
         count: int = 1) -> QueryResult:
    try:
        cursor = con.execute(statement, params) if params is not None else con.execute(statement)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall() if cursor.description else []
    except duckdb.Error as exc:
        where = f"Statement {number} of {count}: " if count > 1 else ""
        raise _query_error(con, exc, where) from exc
    return QueryResult(columns, rows, statement.query.strip().rstrip(";").rstrip(), number,
                       count)


def query(home: Path | str, sql: str, *, params: Sequence[Any] | dict[str, Any] | None = None
          ) -> QueryResult:
    """Run one read-only statement against the warehouse on a confined connection (see the
    module docstring); every failure is a WarehouseError of one sentence (a QueryError when
    the SQL itself is the problem). Several statements are refused: use `query_each`."""
    con = open_read_only(home)
    try:
        statements = check_read_only(con, sql)
        if len(statements) > 1:
            raise QueryError(f"The query holds {len(statements)} statements; give one "
                             "statement (or run them one at a time).")
        return _run(con, statements[0], params)
    finally:
        con.close()


def query_each(home: Path | str, sql: str, *, single_result: str | None = None
               ) -> Iterator[QueryResult]:
    """Every statement of `sql`, run in turn on one confined connection, yielding each
    result as it comes (as the duckdb shell shows them). Every statement is checked to be a
    read before the first one runs; a failing statement stops the rest, with an error that
    says which of them it was. With `single_result` (the sentence saying why), a query of
    several statements is refused with it before any of them runs."""
    con = open_read_only(home)
    try:
        statements = check_read_only(con, sql)
        if single_result and len(statements) > 1:
            raise QueryError(single_result)
        for number, statement in enumerate(statements, 1):
            yield _run(con, statement, None, number, len(statements))
    finally:
        con.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def statement_heading(sql: str, limit: int = 100) -> str:
    """A statement as a one-line `--` comment (whitespace collapsed, cut at `limit`)."""
    text = " ".join(sql.split())
    return "-- " + (text if len(text) <= limit else text[:limit - 3] + "...")


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
