"""The simulator's offer search over real HTTP: `POST /api/v0/bundles/` (and the legacy
`GET ?q=`) answering from the market model.

Expected lists are recomputed here in plain Python from the unfiltered market the same
server lists, never from the server's own filter code.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from pipeline.sim.fleet import FleetModel
from pipeline.sim.market import MarketModel
from pipeline.sim.simulator import SimulatorServer

T = datetime(2026, 3, 2, 12, 20, tzinfo=UTC)
KEY = "market-key-0c41"
AUTH = {"Authorization": f"Bearer {KEY}"}
EVERYTHING = 100_000


@pytest.fixture(scope="module")
def fleet() -> FleetModel:
    return FleetModel(seed=7, size=40)


@pytest.fixture(scope="module")
def server(fleet: FleetModel) -> Iterator[SimulatorServer]:
    with SimulatorServer({KEY: fleet}, clock=lambda: T, search_min_interval=0.0) as sim:
        yield sim


def post(url: str, query: dict[str, Any], headers: dict[str, str] | None = None,
         moment: datetime | None = None) -> requests.Response:
    h = dict(AUTH if headers is None else headers)
    if moment is not None:
        h["X-Vast-Sim-Time"] = moment.isoformat()
    return requests.post(f"{url}/api/v0/bundles/", json=query, headers=h, timeout=10)


def offers(url: str, query: dict[str, Any], moment: datetime | None = None) -> list[dict]:
    r = post(url, query, moment=moment)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    return r.json()["offers"]


def everything(url: str, offer_type: str = "on-demand", moment: datetime | None = None,
               **extra: Any) -> list[dict]:
    """The whole market of one type, by id (no filter at all)."""
    return offers(url, {"type": offer_type, "limit": EVERYTHING, "order": [["id", "asc"]],
                        **extra}, moment)


def ids(rows: list[dict]) -> list[int]:
    return [r["id"] for r in rows]


def test_the_demo_market_is_hundreds_of_offers_of_every_kind(server: SimulatorServer) -> None:
    for kind in ("on-demand", "bid"):
        rows = everything(server.url, kind)
        assert 150 <= len(rows) <= 999, len(rows)
        assert len(set(ids(rows))) == len(rows)
        assert {r["verification"] for r in rows} >= {"verified", "unverified"}
        assert {r["rentable"] for r in rows} == {True, False}
        assert all(r["is_bid"] == (kind == "bid") for r in rows)
    bids = everything(server.url, "bid")
    assert all(r["min_bid"] < r["dph_base"] for r in bids)


OPS: list[tuple[str, str, Any, Any]] = [
    ("eq", "gpu_name", "RTX 4090", operator.eq),
    ("neq", "verification", "verified", operator.ne),
    ("gt", "num_gpus", 2, operator.gt),
    ("gte", "reliability", 0.98, operator.ge),
    ("lt", "dph_total", 1.0, operator.lt),
    ("lte", "disk_space", 400, operator.le),
    ("in", "gpu_name", ["RTX 3090", "L40S"], lambda a, b: a in b),
    ("notin", "num_gpus", [1, 8], lambda a, b: a not in b),
]


@pytest.mark.parametrize(("op", "field", "value", "check"), OPS, ids=[o[0] for o in OPS])
def test_every_documented_operator(server: SimulatorServer, op: str, field: str, value: Any,
                                   check: Any) -> None:
    market = everything(server.url)
    expected = [r["id"] for r in market if check(r[field], value)]
    got = everything(server.url, **{field: {op: value}})
    assert ids(got) == expected
    assert 0 < len(expected) < len(market), "the filter keeps some offers and drops some"


def test_operators_combine_and_unknown_fields_are_ignored(server: SimulatorServer) -> None:
    market = everything(server.url)
    expected = [r["id"] for r in market
                if r["verification"] == "verified" and r["rentable"] and r["num_gpus"] >= 2
                and r["num_gpus"] <= 4]
    got = everything(server.url, verified={"eq": True}, rentable={"eq": True},
                     num_gpus={"gte": 2, "lte": 4}, external={"eq": False},
                     no_such_field={"gt": 3}, rented={"eq": False})
    assert ids(got) == expected and expected


def test_client_conventions_underscores_aliases_and_numeric_strings(
        server: SimulatorServer) -> None:
    market = everything(server.url)
    expected = [r["id"] for r in market if r["gpu_name"] == "RTX 3090" and r["num_gpus"] >= 2
                and r["dph_total"] <= 3]
    got = everything(server.url, gpu_name={"eq": "RTX_3090"}, num_gpus={"gte": "2"},
                     dph={"lte": "3"})
    assert ids(got) == expected and expected
    countries = {"US", "CA"}
    got = everything(server.url, geolocation={"in": sorted(countries)})
    assert ids(got) == [r["id"] for r in market if r["geolocation"][-2:] in countries]


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_order_and_limit(server: SimulatorServer, direction: str) -> None:
    market = everything(server.url, "bid")
    ranked = sorted(market, key=lambda r: r["id"])
    ranked.sort(key=lambda r: r["dph_total"], reverse=direction == "desc")
    got = offers(server.url, {"type": "bid", "order": [["dph_total", direction]], "limit": 12})
    assert ids(got) == ids(ranked[:12])
    assert [r["rn"] for r in got] == list(range(1, 13))


def test_default_order_is_score_descending(server: SimulatorServer) -> None:
    market = everything(server.url)
    got = offers(server.url, {"limit": 20})
    assert ids(got) == ids(sorted(market, key=lambda r: -r["score"])[:20])


def test_allocated_storage_prices_into_dph_total(server: SimulatorServer) -> None:
    for kind, price in (("on-demand", "dph_base"), ("bid", "min_bid")):
        small = {r["id"]: r for r in everything(server.url, kind, allocated_storage=10)}
        big = {r["id"]: r for r in everything(server.url, kind, allocated_storage=250)}
        assert small.keys() == big.keys()
        for oid, r in small.items():
            assert math.isclose(r["dph_total"], r[price] + r["storage_cost"] * 10 / 720,
                                rel_tol=1e-12)
            assert math.isclose(big[oid]["dph_total"] - r["dph_total"],
                                r["storage_cost"] * 240 / 720, rel_tol=1e-9)
            assert big[oid]["dph_base"] == r["dph_base"]


def test_legacy_get_answers_as_post(server: SimulatorServer) -> None:
    query = {"type": "on-demand", "gpu_name": {"in": ["RTX 4090"]}, "limit": 7,
             "order": [["dph_total", "asc"]]}
    r = requests.get(f"{server.url}/api/v0/bundles/", params={"q": json.dumps(query)},
                     headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.json() == post(server.url, query).json()


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "Invalid json body"),
    (b'{"type": "spot"}', "Invalid type"),
    (b'{"limit": 0}', "limit"),
    (b'{"allocated_storage": "lots"}', "allocated_storage"),
    (b'{"gpu_name": {"like": "RTX"}}', "Invalid filter operator"),
    (b'{"num_gpus": {"in": 4}}', "needs a JSON array"),
    (b'[1, 2]', "JSON object"),
])
def test_bad_queries_answer_400_with_the_error_body(server: SimulatorServer, body: bytes,
                                                    message: str) -> None:
    r = requests.post(f"{server.url}/api/v0/bundles/", data=body, headers=AUTH, timeout=10)
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/json"
    assert r.json()["success"] is False and message in r.json()["msg"]


def test_search_needs_a_key(server: SimulatorServer) -> None:
    assert post(server.url, {}, headers={}).status_code == 403
    assert post(server.url, {}, headers={"Authorization": "Bearer nope"}).status_code == 404
    r = requests.delete(f"{server.url}/api/v0/bundles/", headers=AUTH, timeout=10)
    assert r.status_code == 405


def test_same_clock_same_answer_across_processes(fleet: FleetModel) -> None:
    code = ("import json,sys;from datetime import datetime;"
            "from pipeline.sim.fleet import FleetModel;from pipeline.sim.market import "
            "MarketModel;m=MarketModel(FleetModel(seed=7,size=40));"
            f"print(json.dumps(m.offers_at(datetime.fromisoformat('{T.isoformat()}'),'bid',"
            "20.0),sort_keys=True))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "77", "PATH": ""}).stdout
    with SimulatorServer({KEY: fleet}, clock=lambda: T, search_min_interval=0.0) as other:
        served = everything(other.url, "bid", allocated_storage=20.0)
    mine = sorted(json.loads(out), key=lambda r: r["id"])
    for r in served:
        r["rn"] = 0
    assert served == mine


def test_the_fleets_machines_are_offered_as_the_fleet_sees_them(
        server: SimulatorServer, fleet: FleetModel) -> None:
    market = {r["machine_id"]: r for r in everything(server.url)}
    records = fleet.clean_records_at(T)
    shared = [rec for rec in records if rec["machine_id"] in market]
    assert len(shared) >= 3
    for rec in shared:
        offer = market[rec["machine_id"]]
        assert offer["host_id"] == rec["host_id"]
        assert offer["geolocation"] == rec["geolocation"]
        assert offer["gpu_name"] == rec["gpu_name"]
        assert offer["reliability"] == rec["reliability2"]
        assert offer["storage_cost"] == rec["storage_cost"]
    assert len({r["machine_id"] for r in records}) < len(market), "other hosts too"


def _per_gpu_medians(rows: list[dict], price: str) -> dict[str, float]:
    by_model: dict[str, list[float]] = {}
    for r in rows:
        by_model.setdefault(r["gpu_name"], []).append(r[price] / r["num_gpus"])
    return {name: statistics.median(v) for name, v in by_model.items()}


def test_prices_move_over_time(server: SimulatorServer) -> None:
    days = [everything(server.url, moment=T + timedelta(days=d)) for d in (0, 4, 8)]
    medians = [_per_gpu_medians(rows, "dph_base") for rows in days]
    for name in medians[0]:
        assert len({round(m[name], 4) for m in medians}) == 3, name
    hours = [everything(server.url, "bid", moment=T + timedelta(hours=h)) for h in (0, 6)]
    both = {r["id"]: r for r in hours[0]}.keys() & {r["id"] for r in hours[1]}
    assert both, "offers listed at both hours"
    before = {r["id"]: r["min_bid"] for r in hours[0]}
    after = {r["id"]: r["min_bid"] for r in hours[1]}
    assert sum(before[i] != after[i] for i in both) > len(both) / 2, "bids follow demand"


def test_offers_are_rented_away_and_relisted_under_new_ids(server: SimulatorServer) -> None:
    def keyed(moment: datetime) -> dict[tuple[int, int], int]:
        return {(r["machine_id"], r["num_gpus"]): r["id"]
                for r in everything(server.url, moment=moment)}

    timeline = [keyed(T + timedelta(hours=h)) for h in range(48)]
    gone = appeared = relisted = 0
    for before, after in itertools.pairwise(timeline):
        gone += len(before.keys() - after.keys())
        appeared += len(after.keys() - before.keys())
        assert all(before[k] == after[k] for k in before.keys() & after.keys()), \
            "an offer keeps its id while it stays listed"
    for key in timeline[0]:
        relisted += len({snap[key] for snap in timeline if key in snap}) > 1
    assert gone > 20 and appeared > 20 and relisted > 20


def test_several_offers_at_exactly_one_price(fleet: FleetModel) -> None:
    market = MarketModel(fleet, tied_offers=30, tied_price=0.2)
    with SimulatorServer({KEY: fleet}, clock=lambda: T, market=market,
                         search_min_interval=0.0) as sim:
        query = {"type": "on-demand", "gpu_name": {"eq": "RTX 3090"}, "num_gpus": {"eq": 1},
                 "order": [["dph_total", "asc"]], "limit": 10,
                 "dph_total": {"gte": 0.2 + 0.1 * 8 / 720}}
        first = offers(sim.url, query)
        assert len({r["dph_total"] for r in first}) == 1 and len(first) == 10
        again = offers(sim.url, {**query, "dph_total": {"gte": first[-1]["dph_total"]}})
        assert ids(again) == ids(first), "asking again from the last price adds no new id"
        tied = everything(sim.url, dph_total={"eq": first[0]["dph_total"]})
        assert len(tied) == 30


def test_search_rate_limit_answers_429_without_retry_after(fleet: FleetModel) -> None:
    with SimulatorServer({KEY: fleet}, clock=lambda: T, search_min_interval=0.5) as sim:
        assert post(sim.url, {"limit": 1}).status_code == 200
        r = post(sim.url, {"limit": 1})
        assert r.status_code == 429 and "Retry-After" not in r.headers
        assert requests.get(f"{sim.url}/api/v1/instances/", headers=AUTH,
                            timeout=10).status_code == 200, "the search's limit is its own"
        time.sleep(0.55)
        assert post(sim.url, {"limit": 1}).status_code == 200


def test_forced_and_random_429s(fleet: FleetModel) -> None:
    with SimulatorServer({KEY: fleet}, clock=lambda: T, search_min_interval=0.0) as sim:
        sim.throttle_searches(2)
        assert [post(sim.url, {"limit": 1}).status_code for _ in range(3)] == [429, 429, 200]
    with SimulatorServer({KEY: fleet}, clock=lambda: T, search_min_interval=0.0,
                         search_429_rate=1.0) as sim:
        assert {post(sim.url, {"limit": 1}).status_code for _ in range(3)} == {429}


def test_some_of_the_demo_fleet_pays_above_persistent_verified_offers(
        fleet: FleetModel) -> None:
    """Issue 21's rule, in plain Python: a running on-demand instance, a verified offer of
    the same GPU model and count on another machine, reliable and roomy enough, offered at
    no more than its newest price in half of the last 24 hourly snapshots, cheaper by more
    than $5 a month and 3%."""
    market = MarketModel(fleet)
    for t_end in (T, T + timedelta(days=40, hours=7), T + timedelta(days=200, hours=15)):
        snaps = [market.offers_at(t_end - timedelta(hours=h)) for h in range(24)]
        movers = []
        for rec in fleet.clean_records_at(t_end):
            if rec["actual_status"] != "running" or rec["is_bid"]:
                continue
            disk = rec["disk_space"]
            current = rec["dph_base"] + rec["storage_cost"] * disk / 720
            prices = [_persistent_price(o, rec, snaps) for o in snaps[0]]
            best = min((p for p in prices if p is not None), default=None)
            if best is not None and (current - best) * 730 > 5 and best < 0.97 * current:
                movers.append(rec["id"])
        running = [r for r in fleet.clean_records_at(t_end) if r["actual_status"] == "running"]
        assert 1 <= len(movers) < len(running), t_end


def _persistent_price(offer: dict, rec: dict, snaps: list[list[dict]]) -> float | None:
    disk = rec["disk_space"]
    if (offer["gpu_name"], offer["num_gpus"]) != (rec["gpu_name"], rec["num_gpus"]) \
            or offer["verification"] != "verified" or offer["machine_id"] == rec["machine_id"] \
            or offer["reliability"] < rec["reliability2"] or offer["disk_space"] < disk:
        return None
    price = offer["dph_base"] + offer["storage_cost"] * disk / 720
    key = (offer["machine_id"], offer["num_gpus"])
    seen = sum(any((o["machine_id"], o["num_gpus"]) == key
                   and o["dph_base"] + o["storage_cost"] * disk / 720 <= price for o in snap)
               for snap in snaps)
    return price if seen >= len(snaps) / 2 else None
