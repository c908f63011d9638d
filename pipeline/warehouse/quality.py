"""Data-quality checks of the `instance_snapshots` history, framework-free.

Dagster turns each into an asset check (assets/collection.py); tests call them directly.
They read the Parquet with DuckDB, so what they check is what analysts read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb

from pipeline.landing.history import newest_snapshots
from pipeline.storage.schema import PRICING_KEYS, PRICING_PARENTS, pricing_column
from pipeline.storage.store import Store, sql_file_list
from pipeline.warehouse.models import interval_cap_minutes, sql_literal

HISTORY_CHECKS = ("unique_instance_snapshot", "instance_id_not_null", "prices_non_negative",
                  "no_unexpected_schema_drift", "fresh_snapshots")
# Checks that warn instead of fail (the rest are ERROR): new API fields are kept in
# `extra_fields` and lose nothing, so they are news for the schema, not broken data.
WARNING_CHECKS = frozenset({"no_unexpected_schema_drift"})
_PRICE_COLUMNS = ("dph_base", "dph_total", "storage_cost", "storage_total_cost", "min_bid",
                  *(pricing_column(p, k) for p in PRICING_PARENTS for k in PRICING_KEYS))


@dataclass(frozen=True)
class CheckOutcome:
    """One check's verdict: `passed`, a sentence, and numbers for the UI."""

    name: str
    passed: bool
    detail: str
    metadata: dict[str, object] = field(default_factory=dict)
    severity: str = "ERROR"  # or "WARN": shown, but never blocks downstream work


def _severity(check: str) -> str:
    return "WARN" if check in WARNING_CHECKS else "ERROR"


def _relation(source: str) -> str:
    """`read_parquet` over `source` (a quoted glob or a list literal of files)."""
    return (f"read_parquet({source}, hive_partitioning = true, union_by_name = true, "
            "hive_types = {'account': VARCHAR, 'snapshot_date': DATE})")


def _source(store: Store, day: date | None) -> str | None:
    """The `instance_snapshots` files checked: the day's of every account, or (no day) the
    whole history; None when there are none."""
    if day is not None:
        files = store.parquet_files("instance_snapshots", [day])
        return sql_file_list(files) if files else None
    if not store.list_partitions("instance_snapshots"):
        return None
    return "'" + sql_literal(store.parquet_glob("instance_snapshots")) + "'"


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    row = con.execute(sql).fetchone()
    return None if row is None else row[0]


def check_unique_rows(con: duckdb.DuckDBPyConnection, rows: str) -> CheckOutcome:
    duplicates = _scalar(con, f"""
        select count(*) from (
            select account, id, snapshot_at from {rows}
            group by all having count(*) > 1)""")
    return CheckOutcome("unique_instance_snapshot", duplicates == 0,
                        f"{duplicates} (account, instance_id, snapshot_at) keys repeat",
                        {"duplicate_keys": int(duplicates or 0)})


def check_ids_not_null(con: duckdb.DuckDBPyConnection, rows: str) -> CheckOutcome:
    nulls = _scalar(con, f"select count(*) from {rows} where id is null")
    return CheckOutcome("instance_id_not_null", nulls == 0, f"{nulls} rows without an id",
                        {"null_ids": int(nulls or 0)})


def check_prices_non_negative(con: duckdb.DuckDBPyConnection, rows: str) -> CheckOutcome:
    condition = " or ".join(f"{c} < 0" for c in _PRICE_COLUMNS)
    negatives = _scalar(con, f"select count(*) from {rows} where {condition}")
    return CheckOutcome("prices_non_negative", negatives == 0,
                        f"{negatives} rows with a negative price among {len(_PRICE_COLUMNS)} "
                        "price columns", {"negative_price_rows": int(negatives or 0)})


def check_schema_drift(con: duckdb.DuckDBPyConnection, rows: str) -> CheckOutcome:
    """Warns (never fails) and names the fields the API sent that the schema does not know."""
    rows = con.execute(f"""
        select distinct unnest(json_keys(extra_fields::json)) as name
        from {rows} where extra_fields is not null order by name""").fetchall()
    names = [r[0] for r in rows]
    detail = ("no unknown fields" if not names
              else f"the API sent {len(names)} unknown fields, kept in extra_fields: "
                   + ", ".join(names))
    return CheckOutcome("no_unexpected_schema_drift", not names, detail,
                        {"new_fields": ", ".join(names) or "-"}, severity=_severity(
                            "no_unexpected_schema_drift"))


def check_freshness(store: Store, *, cadence_minutes: int,
                    now: datetime | None = None) -> CheckOutcome:
    """The newest snapshot of every account is no older than the interval cap.

    The bound is `interval_cap_minutes`, the cap of `instance_intervals`: a stale account
    is one whose time since its newest snapshot the warehouse would count as unobserved.
    Reads each account's newest day of the snapshot log only, whatever the history's size.
    """
    now = now or datetime.now(UTC)
    cap = interval_cap_minutes(cadence_minutes)
    limit = timedelta(minutes=cap)
    rows = [(account, at) for account, (at, _count) in newest_snapshots(store).items()]
    stale = [(account, newest) for account, newest in rows if now - newest > limit]
    detail = ("every account's newest snapshot is fresh" if not stale else
              "; ".join(f"{a}: newest snapshot {n:%Y-%m-%d %H:%M}Z is older than "
                        f"{cap} minutes" for a, n in stale))
    return CheckOutcome("fresh_snapshots", bool(rows) and not stale,
                        detail if rows else "no snapshots yet",
                        {"accounts": len(rows), "stale_accounts": len(stale)})


def run_history_checks(store: Store, *, cadence_minutes: int, now: datetime | None = None,
                       day: date | None = None) -> list[CheckOutcome]:
    """All checks of the history; a missing history fails them with one sentence.

    With `day`, the row checks read that day's partitions only (what a scheduled run just
    landed), so their cost does not grow with the history; freshness always looks at each
    account's newest snapshot. Without `day`, they audit the whole history.
    """
    source = _source(store, day)
    if source is None:
        detail = (f"no instance_snapshots on {day}: nothing was landed that day" if day
                  else "no instance_snapshots yet: run a collection first")
        return [CheckOutcome(name, False, detail, severity=_severity(name))
                for name in HISTORY_CHECKS]
    rows = _relation(source)
    with store.duckdb() as con:
        return [check_unique_rows(con, rows), check_ids_not_null(con, rows),
                check_prices_non_negative(con, rows), check_schema_drift(con, rows),
                check_freshness(store, cadence_minutes=cadence_minutes, now=now)]
