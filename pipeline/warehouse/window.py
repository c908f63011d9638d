"""Window planning: which days a build recomputes, from the old and new source fingerprints.

Why its own module: whether a build is full or incremental, which days it recomputes and
whether the history only grew at its end (so tables may be updated in place) are decided
here alone, from fingerprints, before any model runs; the SQL variables the models'
`-- incremental rows:` predicates read (`changed_from`, `bills_changed_from`) are set from
the same decision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, date, timedelta
from typing import Any

from pipeline.landing import history
from pipeline.storage.datasets import CHARGE_FAMILY, SNAPSHOT_FAMILY, family
from pipeline.storage.store import Store
from pipeline.warehouse.state import Fingerprints

# Only the snapshot family moves the incremental window: the billed-charges datasets feed
# only small table and view models, rebuilt on every build, so a bill refetch never
# recomputes daily models.
WINDOW_SOURCES: tuple[str, ...] = tuple(d.name for d in family(SNAPSHOT_FAMILY))


def days_between(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def days_in(window: tuple[date, date] | None) -> int:
    """How many days a window holds (none: 0)."""
    return len(days_between(*window)) if window else 0


def _all_days(sources: Iterable[dict[str, dict[str, str]]]) -> set[date]:
    return {date.fromisoformat(d) for src in sources for acc in src.values() for d in acc}


def changed_days(old: dict[str, Any], new: dict[str, dict[str, str]]) -> dict[str, set[date]]:
    """Per account, the days whose partition files were added, rewritten or removed."""
    changed: dict[str, set[date]] = {}
    for account in set(old) | set(new):
        a, b = old.get(account, {}), new.get(account, {})
        days = {date.fromisoformat(d) for d in set(a) | set(b) if a.get(d) != b.get(d)}
        if days:
            changed[account] = days
    return changed


def plan_window(
    state: dict[str, Any], sources: Fingerprints, full: bool
) -> tuple[bool, tuple[date, date] | None]:
    """(full?, window of days to recompute) from the old and the new source fingerprints.

    The window starts, for each account with a change, at its last day with data before its
    earliest changed day (its last intervals end at the first new snapshot), takes the
    earliest of these and runs to the newest day, because the starting phase and incidents
    depend on what came before.
    """
    days = _all_days(sources.get(name, {}) for name in WINDOW_SOURCES)
    if not days:
        return full, None
    if full:
        return True, (min(days), max(days))
    changed: dict[str, set[date]] = {}
    for name in WINDOW_SOURCES:
        old = state.get("sources", {}).get(name, {})
        for account, account_days in changed_days(old, sources.get(name, {})).items():
            changed.setdefault(account, set()).update(account_days)
    if not changed:
        return False, None
    # Per account: an account that collected nothing for days has its last snapshot before
    # the gap on an older day than the other accounts' data.
    start = min(_last_day_before(sources, account, min(account_days))
                for account, account_days in changed.items())
    return False, (start, max(max(days), *(max(d) for d in changed.values())))


def _last_day_before(sources: Fingerprints, account: str, first: date) -> date:
    """The account's last day with a snapshot log file before `first`, else `first`: the
    log, not the instance rows or the quarantine, is what commits a snapshot."""
    earlier = [date.fromisoformat(d) for d in sources.get("snapshots", {}).get(account, {})
               if d < first.isoformat()]
    return max(earlier, default=first)


def only_appended(state: dict[str, Any], sources: Fingerprints) -> bool:
    """Did the snapshot history only grow at its end since the last build?

    True when no day file was removed and every changed day of an account is on or after
    its newest day in the last build (that day's file is rewritten as snapshots are added
    to it). Only then do the incremental tables' rules hold (see `Incremental`): a past
    day rewritten can change what older rows were built from, so the tables are rebuilt.
    """
    for name in WINDOW_SOURCES:
        old, new = state.get("sources", {}).get(name, {}), sources.get(name, {})
        for account, old_days in old.items():
            new_days = new.get(account, {})
            if set(old_days) - set(new_days):
                return False
            newest = max(old_days, default="")
            if any(d < newest and old_days.get(d) != fp for d, fp in new_days.items()):
                return False
    return True


def set_changed_from(con: Any, state: dict[str, Any], sources: Fingerprints,
                     window: tuple[date, date] | None) -> None:
    """The variables the `-- incremental rows:` predicates use: `changed_from`, the first
    day the build recomputes from the snapshots (none: a day after all data), and
    `bills_changed_from`, the first day whose stored bill changed."""
    never = date(9999, 12, 31)
    con.execute("SET VARIABLE changed_from = ?::DATE", [window[0] if window else never])
    bill_days = [d for name in (d.name for d in family(CHARGE_FAMILY))
                 for days in changed_days(state.get("sources", {}).get(name, {}),
                                          sources.get(name, {})).values() for d in days]
    con.execute("SET VARIABLE bills_changed_from = ?::DATE", [min(bill_days, default=never)])
    con.execute("SET VARIABLE recompute_from = DATE '0001-01-01'")


def context_days(cap_minutes: int) -> int:
    """How many days an interval can reach past the day it starts (at least one)."""
    return max(1, math.ceil(cap_minutes / 1440))


def newest_snapshots_from(store: Store) -> date:
    """The earliest UTC day holding an account's newest snapshot: every account's newest
    snapshot is on or after it. `fleet_now` and `incidents` read only those days of the
    log (`newest_snapshot_days_from`) instead of every day file of the history."""
    newest = history.newest_snapshots(store)
    return min((at.astimezone(UTC).date() for at, _ in newest.values()),
               default=date(1970, 1, 1))
