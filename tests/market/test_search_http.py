"""The market search over real HTTP against the embedded simulator's `POST /api/v0/bundles/`:
the continuation by price (a normal cut-off ends complete and de-duplicated; more offers at
one price than the limit ends incomplete), what each request carries, pacing and 429s, and
the snapshot landed and rebuilt byte for byte. Expected offers are read from the simulator's
market model directly, never from what the pipeline landed."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from pipeline.core.errors import RetriesExhaustedError
from pipeline.market.collect import take_market_snapshot
from pipeline.market.http import SEARCH_PATH, SearchClient
from pipeline.market.landing import FAMILY, day_path, rebuild_market
from pipeline.market.raw import raw_days, read_raw
from pipeline.market.settings import MarketSettings
from pipeline.sim.fleet import FleetModel
from pipeline.sim.market import MarketModel
from pipeline.sim.simulator import DEMO_API_KEY, SimulatorServer
from pipeline.storage.store import Store

AT = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
FLEET = FleetModel(seed=7, size=12)


@contextmanager
def _client(market: MarketModel, *, server_interval: float = 0.0,
            client_interval: float = 0.0, **client_options: float
            ) -> Iterator[tuple[SimulatorServer, SearchClient]]:
    with SimulatorServer(FLEET, market=market, search_min_interval=server_interval) as server, \
            SearchClient(DEMO_API_KEY, server.url, min_interval=client_interval,
                         simulated_time=AT, **client_options) as client:
        yield server, client


def _snapshot(store: Store, client: SearchClient, names: list[str], limit: int):
    return take_market_snapshot(
        store, client.search, MarketSettings(limit=limit, allocated_storage_gb=12.0), names,
        snapshot_at=AT, source="simulator", retries=lambda: client.stats.retries,
        snapshot_id="s1")


def _expected(market: MarketModel, names: list[str]) -> set[tuple[str, int]]:
    """(type, id) of every rentable offer of the models at AT, by the model itself."""
    return {(kind, o["id"]) for kind in ("on-demand", "bid")
            for o in market.offers_at(AT, kind, 12.0)
            if o["gpu_name"] in names and o["rentable"]}


def _landed(store: Store) -> list[tuple[str, int]]:
    table = pq.read_table(day_path(store, "market_offers", AT.date()))
    return list(zip(table.column("offer_type").to_pylist(), table.column("id").to_pylist(),
                    strict=True))


def test_a_normal_cut_off_is_continued_to_completion_without_duplicates(tmp_path: Path) -> None:
    market = MarketModel(FLEET, machines=120)
    names = sorted({o["gpu_name"] for o in market.offers_at(AT)})[:3]
    expected = _expected(market, names)
    limit = 7
    assert len(expected) > 4 * limit  # several pages per search
    store = Store(tmp_path)
    with _client(market) as (_server, client):
        result = _snapshot(store, client, names, limit)
    landed = _landed(store)
    assert len(landed) == len(set(landed))
    assert set(landed) == expected
    assert not result.incomplete
    raw = read_raw(store, result.raw_path)
    assert result.requests == len(raw.pages) > 4
    # every request: explicit rentable, the same storage and order, each page continuing
    # from the previous page's last price
    for page in raw.pages:
        body = page.request
        assert body["rentable"] == {"eq": True} and body["allocated_storage"] == 12.0
        assert body["order"] == [["dph_total", "asc"]] and body["limit"] == limit
        assert body["gpu_name"] == {"in": names}
    for before, after in zip(raw.pages, raw.pages[1:], strict=False):
        same_search = (before.offer_type, before.request["verified"]) == \
            (after.offer_type, after.request["verified"])
        if same_search:
            assert len(before.offers) == limit
            assert after.request["dph_total"] == {"gte": before.offers[-1]["dph_total"]}
    [log] = pq.read_table(day_path(store, "market_snapshots", AT.date())).to_pylist()
    assert (log["requests"], log["offers"], log["incomplete"]) == \
        (len(raw.pages), len(expected), False)


def test_more_offers_at_one_price_than_the_limit_ends_incomplete(tmp_path: Path) -> None:
    market = MarketModel(FLEET, machines=0, tied_offers=12, tied_price=0.25,
                         tied_gpu="RTX 3090")
    store = Store(tmp_path)
    with _client(market) as (_server, client):
        result = _snapshot(store, client, ["RTX 3090"], 5)
    assert result.incomplete
    # the verified search of each type meets the 12 tied offers (the fleet's own RTX 3090s
    # may come on other pages): cut off at the tie, once per type
    ties = {kind: Counter(o["dph_total"] for o in market.offers_at(AT, kind, 12.0)
                          if o["verification"] == "verified").most_common(1)[0]
            for kind in ("bid", "on-demand")}
    assert all(count == 12 for _price, count in ties.values())
    assert sorted(result.incomplete_reasons) == [
        f"{kind} verified offers: 5 offers at ${price:g}/h came again with no new id"
        for kind, (price, _count) in sorted(ties.items())]
    landed = _landed(store)
    assert len(landed) == len(set(landed))
    assert set(landed) < _expected(market, ["RTX 3090"])  # some tied offers stayed unseen
    [log] = pq.read_table(day_path(store, "market_snapshots", AT.date())).to_pylist()
    assert log["incomplete"] is True


def test_rebuild_rederives_the_market_byte_for_byte(tmp_path: Path) -> None:
    market = MarketModel(FLEET, machines=40)
    names = sorted({o["gpu_name"] for o in market.offers_at(AT)})
    store = Store(tmp_path)
    with _client(market) as (_server, client):
        _snapshot(store, client, names, 10)
    before = {n: Path(day_path(store, n, AT.date())).read_bytes() for n in FAMILY}
    for name in FAMILY:
        Path(day_path(store, name, AT.date())).unlink()
    [day] = rebuild_market(store)
    assert day.snapshots == 1 and raw_days(store) == [AT.date()]
    assert {n: Path(day_path(store, n, AT.date())).read_bytes() for n in FAMILY} == before


def test_searches_are_paced_per_endpoint(tmp_path: Path) -> None:
    market = MarketModel(FLEET, machines=30)
    names = sorted({o["gpu_name"] for o in market.offers_at(AT)})
    with _client(market, server_interval=0.2, client_interval=0.25) as (server, client):
        started = time.monotonic()
        result = _snapshot(Store(tmp_path), client, names, 8)
        elapsed = time.monotonic() - started
    searches = [s for m, p, s in server.request_log if p == SEARCH_PATH]
    assert searches and set(searches) == {200}  # never throttled: the client waited
    assert elapsed >= 0.25 * (len(searches) - 1)
    assert result.retries == 0


def test_a_429_without_retry_after_is_backed_off_and_retried(tmp_path: Path) -> None:
    market = MarketModel(FLEET, machines=30)
    names = sorted({o["gpu_name"] for o in market.offers_at(AT)})
    store = Store(tmp_path)
    with _client(market, backoff_base=0.05) as (server, client):
        server.throttle_searches(3)
        result = _snapshot(store, client, names, 500)
    statuses = [s for _m, p, s in server.request_log if p == SEARCH_PATH]
    assert statuses[:3] == [429, 429, 429] and set(statuses[3:]) == {200}
    assert result.retries == 3
    header = orjson.loads(store.read_bytes(result.raw_path, "zstd").split(b"\n")[0])
    assert header["_market_snapshot"]["retries"] == 3


def test_429s_outlasting_the_retry_budget_are_one_sentence_and_land_nothing(
        tmp_path: Path) -> None:
    market = MarketModel(FLEET, machines=30)
    store = Store(tmp_path)
    with _client(market, backoff_base=0.05, max_retry_seconds=0.5) as (server, client):
        server.throttle_searches(10_000)
        with pytest.raises(RetriesExhaustedError) as caught:
            _snapshot(store, client, ["RTX 4090"], 50)
    message = str(caught.value)
    assert "/api/v0/bundles/" in message and "rate-limiting" in message
    assert "\n" not in message and DEMO_API_KEY not in message
    assert raw_days(store) == []
