"""Property tests of the client: pagination against the simulator over real HTTP (one server
for all examples, many fleets and moments), and the small rules retries and safety rest on.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import ConfigError
from pipeline.core.simtime import SIM_TIME_HEADER
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import SimulatorServer
from pipeline.source.client import VastClient, is_loopback_host

SEEDS = range(6)
SIZES = (1, 2, 24, 25, 26, 49, 50, 51, 70)
ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def key(seed: int, size: int) -> str:
    return f"prop-key-{seed}-{size}"


@pytest.fixture(scope="module")
def fleets() -> dict[str, FleetModel]:
    return {key(seed, size): FleetModel(seed=seed, size=size) for seed in SEEDS for size in SIZES}


@pytest.fixture(scope="module")
def server(fleets: dict[str, FleetModel]) -> Iterator[SimulatorServer]:
    with SimulatorServer(fleets) as sim:
        yield sim


@FAST
@given(seed=st.sampled_from(SEEDS), size=st.sampled_from(SIZES),
       minutes=st.integers(-20 * 1440, 60 * 1440))
def test_listing_returns_each_instance_once_in_id_order(
    server: SimulatorServer, fleets: dict[str, FleetModel], seed: int, size: int, minutes: int,
) -> None:
    moment = ORIGIN + timedelta(minutes=minutes)
    client = VastClient(key(seed, size), server.url, min_interval=0.0, simulated_time=moment)
    listing = client.list_instances()
    expected_ids = [record["id"] for record in fleets[key(seed, size)].records_at(moment)]
    ids = [record["id"] for record in listing.records]
    assert ids == sorted(set(ids)), "ids must come once each, ascending"
    assert ids == sorted(expected_ids)
    assert listing.pages == max(1, math.ceil(len(ids) / 25))
    assert listing.requests == listing.pages and listing.duplicates_dropped == 0
    assert listing.total_reported == len(ids)


@FAST
@given(st.integers(0, 2**32 - 1))
def test_loopback_means_127_slash_8_for_ipv4(value: int) -> None:
    address = ipaddress.IPv4Address(value)
    assert is_loopback_host(str(address)) == (str(address).split(".")[0] == "127")


@FAST
@given(st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
                .map(lambda label: "h" + label), min_size=2, max_size=4).map(".".join))
def test_simulated_time_is_refused_for_any_public_name(host: str) -> None:
    if host == "localhost" or host.endswith(".localhost"):
        return
    with pytest.raises(ConfigError, match="loopback"):
        VastClient("k", f"https://{host}", simulated_time=ORIGIN)
    client = VastClient("k", f"https://{host}")
    assert SIM_TIME_HEADER not in client._transport.headers()


@FAST
@given(attempt=st.integers(1, 40), base=st.floats(0.0, 5.0), cap=st.floats(0.01, 30.0))
def test_backoff_has_full_jitter_within_its_ceiling(attempt: int, base: float,
                                                    cap: float) -> None:
    """The client's budget is full jitter: any wait from 0 to the exponential ceiling."""
    client = VastClient("k", "http://127.0.0.1:9", backoff_base=base, backoff_max=cap)
    backoff = client._transport.budget.backoff
    assert backoff.jitter == 1.0
    delay = backoff.delay(attempt)
    assert 0.0 <= delay <= min(cap, base * 2 ** (attempt - 1))


@FAST
@given(st.from_regex(r"[0-9a-f]{16,64}", fullmatch=True))
def test_no_part_of_any_key_shows_in_the_repr(api_key: str) -> None:
    client = VastClient(api_key, "http://127.0.0.1:9", simulated_time=ORIGIN)
    shown = repr(client) + repr(client.stats) + repr(client._transport.auth) + str(vars(client))
    assert "127.0.0.1" in shown
    assert not any(api_key[i:i + 8] in shown for i in range(len(api_key) - 7))
