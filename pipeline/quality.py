"""Data-quality checks of the `instance_snapshots` history, framework-free.

Dagster turns each into an asset check (assets/collection.py); tests call them directly.
They read the Parquet with DuckDB, so what they check is what analysts read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb

from pipeline.schema import PRICING_KEYS, PRICING_PARENTS, pricing_column
from pipeline.storage import Store

HISTORY_CHECKS = ("unique_instance_snapshot", "instance_id_not_null", "prices_non_negative",
                  "no_unexpected_schema_drift", "fresh_snapshots")
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


def _relation(store: Store, dataset: str = "instance_snapshots") -> str:
    glob = store.parquet_glob(dataset)
    return (f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true, "
            "hive_types = {'account': VARCHAR, 'snapshot_date': DATE})")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    row = con.execute(sql).fetchone()
    return None if row is None else row[0]


def _history_exists(store: Store) -> bool:
    return bool(store.list_partitions("instance_snapshots"))


def check_unique_rows(con: duckdb.DuckDBPyConnection, store: Store) -> CheckOutcome:
    duplicates = _scalar(con, f"""
        select count(*) from (
            select account, id, snapshot_at from {_relation(store)}
            group by all having count(*) > 1)""")
    return CheckOutcome("unique_instance_snapshot", duplicates == 0,
                        f"{duplicates} (account, instance_id, snapshot_at) keys repeat",
                        {"duplicate_keys": int(duplicates or 0)})


def check_ids_not_null(con: duckdb.DuckDBPyConnection, store: Store) -> CheckOutcome:
    nulls = _scalar(con, f"select count(*) from {_relation(store)} where id is null")
    return CheckOutcome("instance_id_not_null", nulls == 0, f"{nulls} rows without an id",
                        {"null_ids": int(nulls or 0)})


def check_prices_non_negative(con: duckdb.DuckDBPyConnection, store: Store) -> CheckOutcome:
    condition = " or ".join(f"{c} < 0" for c in _PRICE_COLUMNS)
    negatives = _scalar(con, f"select count(*) from {_relation(store)} where {condition}")
    return CheckOutcome("prices_non_negative", negatives == 0,
                        f"{negatives} rows with a negative price among {len(_PRICE_COLUMNS)} "
                        "price columns", {"negative_price_rows": int(negatives or 0)})


def check_schema_drift(con: duckdb.DuckDBPyConnection, store: Store) -> CheckOutcome:
    """Warns (never fails) and names the fields the API sent that the schema does not know."""
    rows = con.execute(f"""
        select distinct unnest(json_keys(extra_fields::json)) as name
        from {_relation(store)} where extra_fields is not null order by name""").fetchall()
    names = [r[0] for r in rows]
    detail = ("no unknown fields" if not names
              else f"the API sent {len(names)} unknown fields, kept in extra_fields: "
                   + ", ".join(names))
    return CheckOutcome("no_unexpected_schema_drift", not names, detail,
                        {"new_fields": ", ".join(names) or "-"}, severity="WARN")


def check_freshness(con: duckdb.DuckDBPyConnection, store: Store, *, cadence_minutes: int,
                    now: datetime | None = None) -> CheckOutcome:
    """The newest snapshot of every account is no older than two cadences."""
    now = now or datetime.now(UTC)
    limit = timedelta(minutes=2 * cadence_minutes)
    rows = con.execute(f"""
        select account, max(snapshot_at) from {_relation(store, 'snapshots')}
        group by account order by account""").fetchall()
    stale = [(account, newest) for account, newest in rows if now - newest > limit]
    detail = ("every account's newest snapshot is fresh" if not stale else
              "; ".join(f"{a}: newest snapshot {n:%Y-%m-%d %H:%M}Z is older than "
                        f"{2 * cadence_minutes} minutes" for a, n in stale))
    return CheckOutcome("fresh_snapshots", bool(rows) and not stale,
                        detail if rows else "no snapshots yet",
                        {"accounts": len(rows), "stale_accounts": len(stale)})


def run_history_checks(store: Store, *, cadence_minutes: int,
                       now: datetime | None = None) -> list[CheckOutcome]:
    """All checks of the history; a missing history fails them with one sentence."""
    if not _history_exists(store):
        return [CheckOutcome(name, False, "no instance_snapshots yet: run a collection first")
                for name in HISTORY_CHECKS]
    with store.duckdb() as con:
        return [check_unique_rows(con, store), check_ids_not_null(con, store),
                check_prices_non_negative(con, store), check_schema_drift(con, store),
                check_freshness(con, store, cadence_minutes=cadence_minutes, now=now)]
