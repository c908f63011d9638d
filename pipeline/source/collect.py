"""One snapshot of one account, end to end: list -> scrub -> raw zone -> Parquet history.

A snapshot is complete or absent: nothing is written until every page has been listed,
and the raw file (the source of truth) appears by an atomic rename. If landing into
Parquet fails afterwards, the raw file is kept and `rebuild` (or the next collection of the
same day) heals the Parquet from it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from pipeline.core.config import Account, Settings
from pipeline.core.errors import PipelineError
from pipeline.landing.history import land_pending
from pipeline.landing.raw import RawSnapshot, new_snapshot_id, read_snapshot, write_snapshot
from pipeline.source.client import VastClient
from pipeline.storage.store import Store

# The embedded simulator is polite-checked like the real service, but much faster.
SIMULATOR_MIN_INTERVAL = 0.0


class CollectionReport(Protocol):
    """Told after every collection, success or failure: each account's error text (None
    when its snapshot was taken), the moment observed, and whether the snapshots were
    landed. The app layer wires the alerts in (`pipeline.alerts.hooks.after_collection`):
    collection sits below the alerts and does not import them."""

    def __call__(self, settings: Settings, outcomes: Mapping[str, str | None],
                 observed_at: datetime, *, landed: bool) -> object: ...


@dataclass(frozen=True)
class SnapshotResult:
    """What one collection did, for logs, CLI output and Dagster metadata.

    The landing fields stay at their defaults when only the raw file was written (Dagster's
    `raw_snapshots` step); `instance_snapshots` then derives the Parquet from raw.
    """

    account: str
    snapshot_id: str
    snapshot_at: datetime
    records: int
    pages: int
    requests: int
    retries: int
    raw_path: str
    rows_landed: int = 0
    quarantined_records: int = 0
    quarantined_values: int = 0
    new_fields: list[str] = field(default_factory=list)

    def summary(self) -> str:
        extra = f", new fields: {', '.join(self.new_fields)}" if self.new_fields else ""
        return (f"{self.account}: snapshot {self.snapshot_id} - {self.records} instances in "
                f"{self.pages} pages ({self.retries} retries), {self.quarantined_records} "
                f"records and {self.quarantined_values} values quarantined{extra}")


def fetch_snapshot(store: Store, account: Account, client: VastClient, *,
                   snapshot_at: datetime, source: str,
                   snapshot_id: str | None = None) -> SnapshotResult:
    """List every instance of `account` and keep it, scrubbed, in the raw zone.

    Nothing is written unless every page was listed: a snapshot is complete or absent.
    A caller-chosen `snapshot_id` makes a re-run replace rather than add (the demo's backfill).
    """
    listing = client.list_instances()
    snapshot_id = snapshot_id or new_snapshot_id()
    raw = RawSnapshot(  # write_snapshot scrubs secrets before a byte is written
        account=account.name, snapshot_id=snapshot_id, snapshot_at=snapshot_at,
        records=listing.records, pages=listing.pages, requests=listing.requests,
        retries=listing.retries, source=source)
    return SnapshotResult(
        account=account.name, snapshot_id=snapshot_id, snapshot_at=snapshot_at,
        records=len(listing.records), pages=listing.pages, requests=listing.requests,
        retries=listing.retries, raw_path=write_snapshot(store, raw))


def take_snapshot(store: Store, account: Account, client: VastClient, *,
                  snapshot_at: datetime, source: str,
                  snapshot_id: str | None = None) -> SnapshotResult:
    """Fetch a snapshot into the raw zone, then land its day's new snapshots in Parquet.

    The landing counts cover every raw snapshot of the day not landed yet: normally just
    this one, plus any whose earlier landing was killed.
    """
    fetched = fetch_snapshot(store, account, client, snapshot_at=snapshot_at, source=source,
                             snapshot_id=snapshot_id)
    landed = land_pending(store, account.name, read_snapshot(store, fetched.raw_path).day)
    return replace(fetched, rows_landed=landed.rows,
                   quarantined_records=landed.quarantined_records,
                   quarantined_values=landed.quarantined_values,
                   new_fields=sorted(landed.new_fields))


@contextmanager
def client_for(account: Account, settings: Settings, *,
               simulated_time: datetime | None = None) -> Iterator[VastClient]:
    """A client for the account; for the simulator source, an embedded server on loopback."""
    with account_client(account, settings.min_interval_seconds, SIMULATOR_MIN_INTERVAL,
                        simulated_time=simulated_time, drift_rate=0.01,
                        new_field_rate=0.01) as client:
        yield client


@contextmanager
def account_client(account: Account, min_interval: float, simulator_min_interval: float, *,
                   simulated_time: datetime | None = None,
                   **fleet_options: float) -> Iterator[VastClient]:
    """A client with the account's key, or, for a simulated account, one on an embedded
    simulator (a default fleet with `fleet_options`) on loopback: the one place that picks
    between the two, for the instance collection and the market's searches."""
    if not account.is_simulated:
        with VastClient(account.api_key, account.url, min_interval=min_interval) as client:
            yield client
        return
    from pipeline.sim.defaults import DEFAULT_FLEET_SIZE, DEFAULT_SEED
    from pipeline.sim.fleet import FleetModel
    from pipeline.sim.simulator import DEMO_API_KEY, SimulatorServer

    fleet = FleetModel(seed=DEFAULT_SEED, size=DEFAULT_FLEET_SIZE, **fleet_options)
    with SimulatorServer(fleet) as server, \
            VastClient(DEMO_API_KEY, server.url, min_interval=simulator_min_interval,
                       simulated_time=simulated_time) as client:
        yield client


def collect(settings: Settings, account_name: str | None = None, *,
            now: datetime | None = None, land: bool = True,
            report: CollectionReport | None = None) -> list[SnapshotResult]:
    """Take one snapshot of each configured account (or only `account_name`), now, and
    tell `report` how it went (it must not raise: reporting never fails a collection).

    With `land=False` only the raw zone is written (Dagster's `raw_snapshots`; the
    `instance_snapshots` step lands it). One account's failure does not cost the others
    their snapshot (the API cannot be asked about the past later): every account is
    tried, then the failures are raised together.
    """
    step = take_snapshot if land else fetch_snapshot
    accounts = [settings.account(account_name)] if account_name else list(settings.accounts)
    store = Store(settings.home)
    results: list[SnapshotResult] = []
    failures: list[tuple[str, PipelineError]] = []
    for account in accounts:
        snapshot_at = now or datetime.now(UTC)
        try:
            with client_for(account, settings) as client:
                results.append(step(store, account, client, snapshot_at=snapshot_at,
                                    source=account.source))
        except PipelineError as exc:
            failures.append((account.name, exc))
    if report is not None:
        outcomes: dict[str, str | None] = {r.account: None for r in results}
        outcomes |= {name: str(exc) for name, exc in failures}
        observed = max((r.snapshot_at for r in results), default=now or datetime.now(UTC))
        report(settings, outcomes, observed, landed=land)
    raise_for_failures(failures, len(accounts))
    return results


def raise_for_failures(failures: list[tuple[str, PipelineError]], accounts: int) -> None:
    """Re-raise one account's error as is; several as one error naming each account."""
    if not failures:
        return
    if accounts == 1:
        raise failures[0][1]
    text = " ".join(f"Account {name}: {exc}" for name, exc in failures)
    raise type(failures[0][1])(f"{len(failures)} of {accounts} accounts failed. {text}")
