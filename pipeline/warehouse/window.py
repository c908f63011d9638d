"""Window planning: which days a build recomputes, from the old and new source fingerprints.

Why its own module: whether a build is full or incremental, which days each daily model
recomputes and whether the history only grew at its end (so tables may be updated in
place) are decided here alone, from fingerprints, before any model runs; the SQL variables
the models' `-- incremental rows:` predicates read (`changed_from`, `bills_changed_from`,
`<dataset>_changed_from`) are set from the same decision.

A daily model recomputes the changed days of the history it reads (`daily_reads`: the
families of the datasets named in its SQL and in the models it reads), whether that
history belongs to an account (`account=` partitions) or to none (the market's): nothing
here is keyed on a dataset's name, only on what the registry and the models say.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, timedelta
from typing import Any

from pipeline.landing import history
from pipeline.storage.datasets import CHARGE_FAMILY, dataset, family
from pipeline.storage.store import Store
from pipeline.warehouse.models import Model
from pipeline.warehouse.sources import SOURCE_SCHEMAS
from pipeline.warehouse.state import Fingerprints

Window = tuple[date, date]


def daily_reads(models: Sequence[Model]) -> dict[str, tuple[str, ...]]:
    """Per daily model, the history datasets whose changes it recomputes: every member of
    the family of each dataset it reads, in its SQL or through the models it reads.

    Why whole families: a family is written together per partition, its commit log last,
    so its members change on the same days. The billed-charges datasets feed only table
    and view models (rebuilt on every build), so a bill refetch recomputes no daily model.
    """
    reads: dict[str, set[str]] = {}
    for model in models:  # build order: what it reads is already known
        reads[model.name] = set(model.sources).union(*(reads.get(d, set()) for d in model.deps))
    return {model.name: _families_of(reads[model.name])
            for model in models if model.materialized == "daily"}


def _families_of(names: Iterable[str]) -> tuple[str, ...]:
    members = {d.name for name in names if name in SOURCE_SCHEMAS
               for d in family(dataset(name).family)}
    return tuple(sorted(members))


def plan_windows(state: dict[str, Any], sources: Fingerprints, full: bool,
                 reads: dict[str, tuple[str, ...]]
                 ) -> tuple[bool, Window | None, dict[str, Window | None]]:
    """(full?, the build's window, each daily model's window).

    The build's window spans the changes of every dataset a daily model reads; a model's
    own window only those of what it reads (none: it keeps its files). A daily model that
    reads no history gets the build's window."""
    full, window = plan_window(state, sources, full, window_sources(reads))
    return full, window, {
        model: plan_window(state, sources, full, names)[1] if names else window
        for model, names in reads.items()}


def window_sources(reads: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The datasets whose changes move some daily model's window."""
    return tuple(sorted({name for names in reads.values() for name in names}))


def days_between(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def days_in(window: Window | None) -> int:
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


def plan_window(state: dict[str, Any], sources: Fingerprints, full: bool,
                names: Sequence[str]) -> tuple[bool, Window | None]:
    """(full?, window of days to recompute) from the old and the new fingerprints of the
    datasets `names`.

    For each account with a change, the window starts at its last day with data before its
    earliest changed day (its last intervals end at the first new snapshot), takes the
    earliest of these and runs to the newest day, because the starting phase and incidents
    depend on what came before. A change to a dataset of no account starts at its day (see
    `_window_start`).
    """
    days = _all_days(sources.get(name, {}) for name in names)
    if not days:
        return full, None
    if full:
        return True, (min(days), max(days))
    starts, ends = [], []
    for name in names:
        old = state.get("sources", {}).get(name, {})
        for account, account_days in changed_days(old, sources.get(name, {})).items():
            starts.append(_window_start(sources, name, account, min(account_days)))
            ends.append(max(account_days))
    if not starts:
        return False, None
    return False, (min(starts), max(max(days), *ends))


def _window_start(sources: Fingerprints, name: str, account: str, first: date) -> date:
    """Where a change of `name` first changed on `first` starts recomputing.

    Of an account: its last day with a file of the family's commit log (the snapshot log:
    the log, not the instance rows or the quarantine, is what commits a snapshot) before
    `first`, else `first`; an account that collected nothing for days has its last
    snapshot before the gap, and its instances' intervals run from that snapshot to the
    next. Of no account (the market): `first` itself, each snapshot of it stands alone.
    """
    spec = dataset(name)
    if not spec.per_account:
        return first
    log = family(spec.family)[-1].name
    earlier = [date.fromisoformat(d) for d in sources.get(log, {}).get(account, {})
               if d < first.isoformat()]
    return max(earlier, default=first)


def only_appended(state: dict[str, Any], sources: Fingerprints, names: Sequence[str]) -> bool:
    """Did the history of `names` (what the daily models read) only grow at its end since
    the last build?

    True when no day file was removed and every changed day of an account is on or after
    its newest day in the last build (that day's file is rewritten as snapshots are added
    to it). Only then do the incremental tables' rules hold (see `Incremental`): a past
    day rewritten can change what older rows were built from, so the tables are rebuilt.
    """
    for name in names:
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
                     window: Window | None) -> None:
    """The variables the `-- incremental rows:` predicates use: `changed_from`, the first
    day the build recomputes (none: a day after all data), `bills_changed_from`, the first
    day whose stored bill changed, and per history dataset `<dataset>_changed_from`, the
    first day with a partition (of any account, or of none) added, rewritten or removed."""
    never = date(9999, 12, 31)
    con.execute("SET VARIABLE changed_from = ?::DATE", [window[0] if window else never])
    first: dict[str, date] = {}
    for name in SOURCE_SCHEMAS:
        days = [d for days in changed_days(state.get("sources", {}).get(name, {}),
                                           sources.get(name, {})).values() for d in days]
        first[name] = min(days, default=never)
        con.execute(f"SET VARIABLE {name}_changed_from = ?::DATE", [first[name]])
    bills = min((first[d.name] for d in family(CHARGE_FAMILY)), default=never)
    con.execute("SET VARIABLE bills_changed_from = ?::DATE", [bills])
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
