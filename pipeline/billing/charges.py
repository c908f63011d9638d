"""Billed charges: Vast.ai's real bill of each UTC day, kept raw and as typed Parquet.

Why it works the way it does:
- `GET /api/v0/charges/` answers one row per contract over the requested window, so a
  day's figures need a window of exactly that day (`VastClient.charges_of_day`).
- Bills are historical (a new user gets months on day one) and settle late: fetching a day
  again REPLACES what was stored for that (account, day), it never adds to it.
- A day lands whole or not at all. Every page is listed before anything is written; then,
  under the day's lock, the response goes to the raw zone (scrubbed, atomically) and the
  Parquet files of the `charges` family are rewritten atomically: the new rows beside the
  old ones, then the day log (`billed_days`, the commit record naming the fetch_id whose
  rows count), then without the old rows (a day with no committed bill: its rows, then the
  log; a rebuild of the logged fetch: each file replaced once). A reader keeping only the
  logged fetch's rows sees one whole bill whenever the writer dies. A failed listing leaves
  the stored bill exactly as it was; a writer killed after the raw file leaves it for
  `rebuild_charges` (or the next fetch) to land.
- The raw zone is the source of truth: `rebuild_charges` re-derives the Parquet from the
  newest raw file of each (account, day), byte for byte as the fetch wrote it.

Modules: this one fetches and rebuilds; `raw` keeps the raw zone of the bills (named and
encoded by `pipeline.landing.rawzone`), `flatten` types a day's bill, `days` writes and reads
its day files (through `pipeline.storage.dayfiles`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pipeline.billing.days import stored_day_total, write_bill
from pipeline.billing.flatten import FlatBill, flatten_bill
from pipeline.billing.raw import (
    RawBill,
    raw_bill_days,
    raw_bill_files,
    raw_bill_path,
    read_raw_bill,
    scrubbed,
    write_raw_bill,
)
from pipeline.core import clock
from pipeline.core.config import Account, Settings
from pipeline.core.errors import ConfigError, DataError, PipelineError
from pipeline.landing.rawzone import left_alone, raw_partitions
from pipeline.source.client import ChargesListing, VastClient
from pipeline.source.collect import client_for, raise_for_failures
from pipeline.storage.store import Store, check_account

DEFAULT_DAYS_BACK = 3  # bills settle late: refetch today and the two days before

Progress = Callable[["BillDayResult"], None]
ClientFactory = Callable[[Account, Settings], AbstractContextManager[VastClient]]


# -- results -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BillDayResult:
    """What fetching (or rebuilding) one account's day did, for the CLI, Dagster and tests."""

    account: str
    day: date
    fetch_id: str
    contracts: int
    items: int                     # rows landed in billed_charges (residual rows included)
    total: float                   # $ billed that day: the sum of the contracts' amounts
    previous_total: float | None   # what was stored before (None: the day is new)
    pages: int
    requests: int
    retries: int
    quarantined: int               # rows landed in billed_quarantine
    raw_path: str = ""

    def change_line(self) -> str:
        """`2026-11-01: $1,050.48 -> $1,051.71`, `... new $x` or `... unchanged $x`."""
        if self.previous_total is None:
            return f"{self.day}: new {_usd(self.total)}"
        if round(self.previous_total, 3) == round(self.total, 3):
            return f"{self.day}: unchanged {_usd(self.total)}"
        before, after = _usd(self.previous_total), _usd(self.total)
        if before == after:  # a sub-cent settlement: show the mills that changed
            before, after = _usd(self.previous_total, 3), _usd(self.total, 3)
        return f"{self.day}: {before} -> {after}"


def _usd(amount: float, decimals: int = 2) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.{decimals}f}"

@dataclass
class ChargesRebuild:
    """`rebuild_charges`'s outcome."""

    days: list[BillDayResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)           # unreadable raw files
    orphan_days: list[tuple[str, date]] = field(default_factory=list)  # Parquet, no raw

    def summary(self) -> str:
        total = sum(d.total for d in self.days)
        text = (f"Rebuilt {len(self.days)} billed days from raw charges "
                f"({sum(d.contracts for d in self.days)} contracts, {_usd(total)}).")
        if self.errors:
            text += f" Left {len(self.errors)} days as they were: " + " ".join(self.errors)
        return text + left_alone(self.orphan_days, "billed days without raw")

# -- fetching ------------------------------------------------------------------------------
def fetch_day(client: VastClient, store: Store, account: str, day: date, *,
              source: str = "vast") -> BillDayResult:
    """Fetch one UTC day's bill of `account` and replace what was stored for that day.

    Every page is listed before anything is written, so a failed listing leaves the
    stored bill exactly as it was.
    """
    check_account(account)
    listing = client.charges_of_day(day)

    def land() -> BillDayResult:  # retried whole if an object-store write lost a race
        # Stamped under the lock, so the newest raw file of a day is the one landed last.
        raw = _raw_bill(account, day, listing, source, datetime.now(UTC))
        previous = stored_day_total(store, account, day)
        flat = flatten_bill(raw)
        path = write_raw_bill(store, raw)
        write_bill(store, account, day, flat)
        return _result(raw, flat, previous, path)

    return store.run_locked(account, day, land)


def _raw_bill(account: str, day: date, listing: ChargesListing, source: str,
              fetched_at: datetime) -> RawBill:
    return RawBill(account=account, day=day, fetch_id=uuid.uuid4().hex, fetched_at=fetched_at,
                   results=[scrubbed(r) for r in listing.results], pages=listing.pages,
                   requests=listing.requests, retries=listing.retries,
                   total_reported=listing.total_reported, source=source)


def _result(raw: RawBill, flat: FlatBill, previous: float | None,
            path: str) -> BillDayResult:
    return BillDayResult(
        account=raw.account, day=raw.day, fetch_id=raw.fetch_id, contracts=flat.contracts,
        items=flat.charges.num_rows, total=flat.total, previous_total=previous,
        pages=raw.pages, requests=raw.requests, retries=raw.retries,
        quarantined=flat.quarantine.num_rows, raw_path=path)


def collect_charges(settings: Settings, days: list[date], account: str | None = None,
                    progress: Progress | None = None, *,
                    clients: ClientFactory | None = None,
                    today: date | None = None) -> list[BillDayResult]:
    """Fetch the bill of each day for each configured account (or only `account`).

    Days go one at a time, in the order given; `progress` is called after each landed
    day. A failure stops that account at the failing day (days before it stay landed, the
    failing one keeps its old bill); the other accounts are still fetched, then the
    failures are raised together. `clients` opens a client per account (default: the
    account's API, or the embedded simulator when no key is set). `today`: the UTC day of
    the caller's clock (default `pipeline.core.clock.today()`), after which no bill exists yet.
    """
    check_days(days, today)
    accounts = [settings.account(account)] if account else list(settings.accounts)
    open_client = clients or client_for
    store = Store(settings.home)
    results: list[BillDayResult] = []
    failures: list[tuple[str, PipelineError]] = []
    for acc in accounts:
        try:
            with open_client(acc, settings) as client:
                for day in days:
                    result = fetch_day(client, store, acc.name, day, source=acc.source)
                    results.append(result)
                    if progress is not None:
                        progress(result)
        except PipelineError as exc:
            failures.append((acc.name, exc))
    raise_for_failures(failures, len(accounts))
    return results


def check_days(days: list[date], today: date | None = None) -> None:
    """Refuse a day after today (UTC, default `pipeline.core.clock.today()`): its bill cannot
    exist yet."""
    today = today or clock.today()
    future = [d for d in days if d > today]
    if future:
        raise ConfigError(f"{min(future)} is in the future (today is {today} UTC): bills "
                          "exist only for days that have begun; pick an earlier --to.")


def day_range(first: date, last: date) -> list[date]:
    """Every UTC day from `first` to `last`, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# -- rebuilding from raw -----------------------------------------------------------------
def rebuild_charges(store: Store, *, date_from: date | None = None, date_to: date | None = None,
                    accounts: list[str] | None = None,
                    progress: Callable[[int], None] | None = None) -> ChargesRebuild:
    """Re-derive the billed Parquet of every raw-charges day in the window (no API call).

    The newest raw file of each (account, day) wins; a day whose newest raw file is
    unreadable is left as it is and named in `errors`. Running it twice changes nothing.
    """
    outcome = ChargesRebuild()
    days = raw_bill_days(store, accounts, date_from, date_to)
    for account, day in days:
        files = raw_bill_files(store, account, day)
        if files:
            try:
                raw = read_raw_bill(store, files[-1])
                if (raw.account, raw.day) != (account, day):
                    raise DataError(f"Raw charges file {files[-1]} belongs to {raw.account} on "
                                    f"{raw.day}, not to this partition.")
                outcome.days.append(rebuild_bill_day(store, raw))
            except DataError as exc:
                outcome.errors.append(str(exc))
        if progress is not None:
            progress(1)
    rebuilt = {(d.account, d.day) for d in outcome.days}
    billed = set(raw_partitions(store, "billed_days", accounts, date_from, date_to))
    outcome.orphan_days = sorted(billed - rebuilt - {(a, d) for a, d in days})
    return outcome


def rebuild_bill_day(store: Store, raw: RawBill) -> BillDayResult:
    """Land one raw file as its day's bill (replacing what was stored)."""
    def land() -> BillDayResult:  # retried whole if an object-store write lost a race
        previous = stored_day_total(store, raw.account, raw.day)
        flat = flatten_bill(raw)
        write_bill(store, raw.account, raw.day, flat)
        return _result(raw, flat, previous, raw_bill_path(store, raw))

    return store.run_locked(raw.account, raw.day, land)
