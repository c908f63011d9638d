"""Read-only access to the warehouse for reports and exports.

Reports never write to `warehouse.duckdb`: they open it with
`pipeline.warehouse.query.open_read_only` (an analyst's session or a running build keeps
working) and turn every failure a user can cause (no warehouse yet, a file held open for
writing, a table or Parquet file missing from an old or damaged build) into one sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.core.errors import NoDataYetError, ReportError, WarehouseError, first_line
from pipeline.reports.window import Window
from pipeline.warehouse.query import open_read_only

_PARAM_RE = re.compile(r"\$([a-z_][a-z0-9_]*)")

# Every report query filters on the account the same way; NULL means all accounts.
ACCOUNT_FILTER = "($account::VARCHAR IS NULL OR account = $account::VARCHAR)"


@contextmanager
def open_warehouse(home: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """`open_read_only` (the same confined connection as `vast-pipeline sql`) as a context
    manager raising ReportError."""
    try:
        con = open_read_only(home)
    except WarehouseError as exc:
        raise ReportError(str(exc)) from None
    try:
        yield con
    finally:
        con.close()


def window_params(window: Window, account: str | None) -> dict[str, Any]:
    """The named parameters every report query may use."""
    return {
        "d0": window.date_from, "d1": window.date_to,
        "t0": window.start, "t1": window.end,
        "m0": window.month_start,
        "account": account,
    }


@contextmanager
def _read_errors() -> Iterator[None]:
    """Any DuckDB error while reading becomes one sentence that says to rebuild."""
    try:
        yield
    except duckdb.CatalogException as exc:
        raise ReportError(
            f"The warehouse lacks a table this report reads ({first_line(exc)}); "
            "run `vast-pipeline build` first."
        ) from None
    except duckdb.Error as exc:
        raise ReportError(
            f"Reading the warehouse failed ({first_line(exc)}); "
            "run `vast-pipeline build` to rebuild it."
        ) from None


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """Only the parameters the query names (DuckDB rejects extras)."""
    return {name: params[name] for name in set(_PARAM_RE.findall(sql))}


def fetch(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict]:
    """Rows as dicts; a DuckDB error is a ReportError (one sentence)."""
    with _read_errors():
        cur = con.execute(sql, _used(sql, params))
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    return [dict(zip(names, row, strict=True)) for row in rows]


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> pa.Table:
    """The result as an Arrow table; errors as in `fetch`."""
    with _read_errors():
        return con.sql(sql, params=_used(sql, params)).to_arrow_table()


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> dict:
    rows = fetch(con, sql, params)
    return rows[0] if rows else {}


def require_data(con: duckdb.DuckDBPyConnection, table: str, day_column: str,
                 window: Window, account: str | None) -> None:
    """Raise the 'empty window' sentence, naming the days the warehouse does cover."""
    params = window_params(window, account)
    span = fetch_one(con, f"""
        SELECT min({day_column}) AS first, max({day_column}) AS last,
               count(*) FILTER (WHERE {day_column} BETWEEN $d0 AND $d1) AS in_window
        FROM {table} WHERE {ACCOUNT_FILTER}""", params)
    if span.get("in_window"):
        return
    who = f" for account {account}" if account else ""
    if span.get("first") is None:
        billed = fetch_one(con, f"SELECT count(*) AS days FROM billed_days WHERE {ACCOUNT_FILTER}",
                           params)
        if billed.get("days"):  # only a table built from snapshots can be empty then
            raise NoDataYetError(f"The warehouse has bills{who} but no snapshots yet, and this "
                                 "report is built from snapshots: run `vast-pipeline collect`, "
                                 "then `vast-pipeline build`.")
        raise NoDataYetError(f"The warehouse has no data{who} yet; collect snapshots and run "
                          "`vast-pipeline build` first.")
    raise ReportError(
        f"No data{who} between {window.date_from} and {window.date_to}; the warehouse covers "
        f"{_day(span['first'])} to {_day(span['last'])}."
    )


def _day(value: date | datetime) -> str:
    return (value.date() if isinstance(value, datetime) else value).isoformat()
