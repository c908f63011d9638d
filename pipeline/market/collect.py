"""One market snapshot, end to end: which GPU models -> the search -> raw zone -> Parquet.

The market belongs to no account: one snapshot per run, fetched with the first account's
key. A snapshot is complete or absent in the raw zone (written once every response came);
landing it in Parquet afterwards can fail and heal later (`land_market_pending`,
`rebuild`), as for the instance history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.core.config import Account, Settings
from pipeline.core.errors import ConfigError
from pipeline.landing.raw import new_snapshot_id
from pipeline.market.landing import MarketDayResult, land_market_pending
from pipeline.market.raw import RawMarketSnapshot, write_raw
from pipeline.market.search import SearchPage, search_market
from pipeline.market.settings import HISTORY_DAYS, MarketSettings, market_settings
from pipeline.source.client import VastClient
from pipeline.source.collect import account_client
from pipeline.storage.store import Store

# The embedded simulator's search is rate-limited fast for the demo and the tests; the
# client keeps a little more than that between searches, as it should with the real API.
SIMULATOR_SEARCH_MARGIN = 1.25


@dataclass(frozen=True)
class MarketSnapshotResult:
    """What one market snapshot did, for the CLI, logs and Dagster metadata."""

    snapshot_id: str
    snapshot_at: datetime
    gpu_names: tuple[str, ...]
    requests: int
    retries: int
    incomplete_reasons: tuple[str, ...]
    raw_path: str
    landed: MarketDayResult | None = None

    @property
    def incomplete(self) -> bool:
        return bool(self.incomplete_reasons)

    def summary(self) -> str:
        landed = self.landed
        offers = f"{landed.offers} offers landed" if landed else "raw only"
        quarantined = (f", {landed.quarantined_records} records and "
                       f"{landed.quarantined_values} values quarantined") if landed else ""
        fields = (f", new fields: {', '.join(sorted(landed.new_fields))}"
                  if landed and landed.new_fields else "")
        state = ("INCOMPLETE (" + "; ".join(self.incomplete_reasons) + ")"
                 if self.incomplete else "complete")
        return (f"market snapshot {self.snapshot_id} at {self.snapshot_at:%Y-%m-%d %H:%M:%S}Z: "
                f"{len(self.gpu_names)} GPU models, {self.requests} requests "
                f"({self.retries} retries), {offers}{quarantined}{fields}; {state}")


def gpu_names_to_search(store: Store, market: MarketSettings, now: datetime) -> tuple[str, ...]:
    """The models of the instance history's 30 days before `now`, plus `[market] gpu_names`;
    none at all is the user's to fix (one sentence, exit 2)."""
    names = set(market.gpu_names) | set(rented_gpu_names(store, now))
    if not names:
        raise ConfigError(
            f"No GPU models to search the market for: the history holds no instance in the "
            f"{HISTORY_DAYS} days before now and `gpu_names` under [market] in the config file "
            "is empty; collect instances first or list models there, e.g. "
            'gpu_names = ["RTX 4090"].')
    return tuple(sorted(names))


def rented_gpu_names(store: Store, now: datetime) -> list[str]:
    """The GPU models of the landed instance snapshots in the 30 days before `now`, read
    through the storage layer (only the days of that window)."""
    since = now - timedelta(days=HISTORY_DAYS)
    days = [since.date() + timedelta(days=i) for i in range((now.date() - since.date()).days + 1)]
    files = store.parquet_files("instance_snapshots", days)
    if not files:
        return []
    from pipeline.storage.store import sql_file_list

    with store.duckdb() as con:
        rows = con.execute(
            f"select distinct gpu_name from read_parquet({sql_file_list(files)}) "
            "where gpu_name is not null and snapshot_at > ? and snapshot_at <= ?",
            [since, now]).fetchall()
    return sorted(r[0] for r in rows)


def take_market_snapshot(store: Store, post: Callable[[dict], dict], market: MarketSettings,
                         gpu_names: Sequence[str], *, snapshot_at: datetime, source: str,
                         retries: Callable[[], int],
                         snapshot_id: str | None = None, land: bool = True,
                         progress: Callable[[SearchPage], None] | None = None,
                         ) -> MarketSnapshotResult:
    """Search, write the raw file, land its day. `retries` tells the client's retries so
    far (the snapshot records those of its own search)."""
    retries_before = retries()
    search = search_market(post, gpu_names, limit=market.limit,
                           allocated_storage_gb=market.allocated_storage_gb, progress=progress)
    retried = retries() - retries_before
    raw = RawMarketSnapshot(
        snapshot_id=snapshot_id or new_snapshot_id(), snapshot_at=snapshot_at,
        pages=search.pages, requests=len(search.pages), retries=retried,
        incomplete_reasons=search.incomplete_reasons, gpu_names=list(gpu_names),
        allocated_storage_gb=market.allocated_storage_gb, limit=market.limit, source=source)
    path = write_raw(store, raw)
    landed = land_market_pending(store, raw.day) if land else None
    return MarketSnapshotResult(
        snapshot_id=raw.snapshot_id, snapshot_at=snapshot_at, gpu_names=tuple(gpu_names),
        requests=raw.requests, retries=retried,
        incomplete_reasons=tuple(search.incomplete_reasons), raw_path=path, landed=landed)


@contextmanager
def search_client_for(account: Account, market: MarketSettings, *,
                      simulated_time: datetime | None = None) -> Iterator[VastClient]:
    """A search client with the account's key; for the simulator, an embedded one."""
    from pipeline.sim.defaults import SEARCH_MIN_INTERVAL

    with account_client(account, market.min_interval_seconds,
                        SEARCH_MIN_INTERVAL * SIMULATOR_SEARCH_MARGIN,
                        simulated_time=simulated_time) as client:
        yield client


def plan_market(settings: Settings, now: datetime) -> tuple[MarketSettings, tuple[str, ...]]:
    """The `[market]` settings and the GPU models to search at `now`: every mistake the user
    corrects is found here, before any request."""
    market = market_settings(settings)
    return market, gpu_names_to_search(Store(settings.home), market, now)


def collect_market(settings: Settings, *, now: datetime | None = None, land: bool = True,
                   progress: Callable[[SearchPage], None] | None = None,
                   ) -> MarketSnapshotResult:
    """One market snapshot now, with the first account's key (`vast-pipeline market`)."""
    snapshot_at = now or datetime.now(UTC)
    market, names = plan_market(settings, snapshot_at)
    store = Store(settings.home)
    account = settings.accounts[0]
    with search_client_for(account, market) as client:
        return take_market_snapshot(
            store, client.search_offers, market, names, snapshot_at=snapshot_at,
            source=account.source, retries=lambda: client.stats.retries,
            land=land, progress=progress)
