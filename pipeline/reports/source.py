"""Read-only access to the warehouse for reports and exports.

Reports never write to `warehouse.duckdb`: they open it read-only (an analyst's session or
a running build keeps working) and turn every failure a user can cause (no warehouse yet,
a build holding the lock, a warehouse from before a table existed) into one sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from pipeline.errors import ReportError
from pipeline.reports.window import Window

WAREHOUSE_FILE = "warehouse.duckdb"
_PARAM_RE = re.compile(r"\$([a-z_][a-z0-9_]*)")

# Every report query filters on the account the same way; NULL means all accounts.
ACCOUNT_FILTER = "($account::VARCHAR IS NULL OR account = $account::VARCHAR)"


def warehouse_path(home: Path | str) -> Path:
    return Path(home) / WAREHOUSE_FILE


@contextmanager
def open_warehouse(home: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection in UTC (day boundaries and timestamps are UTC everywhere)."""
    path = warehouse_path(home)
    if not path.is_file():
        raise ReportError(f"No warehouse at {path}; run `vast-pipeline build` first.")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise ReportError(
            f"Cannot open the warehouse at {path} ({_first_line(exc)}); "
            "if a build is running, try again when it ends."
        ) from None
    try:
        con.execute("SET TimeZone = 'UTC'")
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


def fetch(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict]:
    """Rows as dicts; passes only the parameters the query names (DuckDB rejects extras)."""
    used = {name: params[name] for name in set(_PARAM_RE.findall(sql))}
    try:
        cur = con.execute(sql, used)
    except duckdb.CatalogException as exc:
        raise ReportError(
            f"The warehouse lacks a table this report reads ({_first_line(exc)}); "
            "run `vast-pipeline build` first."
        ) from None
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


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
        raise ReportError(f"The warehouse has no data{who} yet; collect snapshots and run "
                          "`vast-pipeline build` first.")
    raise ReportError(
        f"No data{who} between {window.date_from} and {window.date_to}; the warehouse covers "
        f"{_day(span['first'])} to {_day(span['last'])}."
    )


def _day(value: date | datetime) -> str:
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
