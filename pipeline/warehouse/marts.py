"""Invariants of the warehouse marts, checked after every build (Dagster asset checks).

Why a table of SQL: each check is one entry (name, the table it guards, one query), so
adding a check is adding an entry, and Dagster's check specs are derived from the same
table. Each query returns one row: (passed BOOLEAN, detail VARCHAR).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.warehouse.quality import CheckOutcome
from pipeline.warehouse.query import open_read_only


@dataclass(frozen=True)
class MartCheck:
    """One invariant: its name, the table it is attached to, and its (passed, detail) SQL."""

    name: str
    table: str
    sql: str


def _no_rows(name: str, table: str, relation: str, where: str, what: str) -> MartCheck:
    """A check that no row of `relation` matches `where`; the detail counts them."""
    return MartCheck(name, table, f"SELECT count(*) = 0, count(*) || ' {what}' "
                                  f"FROM {relation} WHERE {where}")


MART_CHECKS: tuple[MartCheck, ...] = (
    _no_rows("costs_non_negative", "estimated_cost_daily", "estimated_cost_daily",
             "gpu_cost < 0 OR storage_cost < 0 OR total_cost < 0",
             "estimated_cost_daily rows with a negative cost"),
    _no_rows("interval_costs_non_negative", "instance_intervals", "instance_intervals",
             "gpu_cost < 0 OR storage_cost < 0 OR hours <= 0",
             "instance_intervals rows with a negative cost or non-positive hours"),
    _no_rows("availability_in_range", "reliability_alltime_by_instance",
             "(SELECT availability FROM reliability_alltime_by_instance "
             "UNION ALL SELECT availability FROM reliability_daily)",
             "availability NOT BETWEEN 0 AND 1", "rows with availability outside [0, 1]"),
    # A hole in a bill log means a day's spend is in no bill (a failed or skipped fetch).
    _no_rows("bill_days_complete", "billed_daily",
             "(SELECT account, unnest(generate_series(min(day), max(day), INTERVAL 1 DAY))::DATE"
             " AS day FROM billed_days GROUP BY account) AS expected "
             "ANTI JOIN billed_days USING (account, day)", "true",
             "days missing from a bill log between its first and last fetched day"),
    # The midnight split loses nothing: the days add up to the intervals.
    MartCheck("cost_daily_equals_intervals", "estimated_cost_daily", """
        SELECT abs(d - i) <= greatest(1e-9, 1e-6 * greatest(abs(d), abs(i))),
               printf('sum(estimated_cost_daily.total_cost) = %.6f, '
                      'sum(instance_intervals.total_cost) = %.6f', d, i)
        FROM (SELECT (SELECT coalesce(sum(total_cost), 0) FROM estimated_cost_daily)::DOUBLE AS d,
                     (SELECT coalesce(sum(total_cost), 0) FROM instance_intervals)::DOUBLE
                     AS i)"""),
)
# Which table each mart check guards (Dagster attaches the check to that asset).
MART_CHECK_TABLES: dict[str, str] = {c.name: c.table for c in MART_CHECKS}


def check_marts(home: Path | str) -> list[CheckOutcome]:
    """Run every mart check on the built warehouse (read-only)."""
    con = open_read_only(home)
    try:
        out = []
        for check in MART_CHECKS:
            passed, detail = con.execute(check.sql).fetchone()
            out.append(CheckOutcome(check.name, bool(passed), detail))
        return out
    finally:
        con.close()
