"""The Vast.ai client over real HTTP on 127.0.0.1: against the simulator, and against a tiny
scripted server standing in for a misbehaving Vast.ai (pages that repeat ids, cursors that
never end, Retry-After, echoed keys) that the simulator never produces.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import (
    ApiUnreachableError,
    AuthError,
    BadResponseError,
    BadTokenError,
    ConfigError,
    EndpointRetiredError,
    RetriesExhaustedError,
    VastApiError,
)
from pipeline.core.secrets import REDACTED
from pipeline.core.simtime import SIM_TIME_HEADER, parse_sim_time
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import DEMO_API_KEY, FaultConfig, SimulatorServer
from pipeline.source.client import BAD_BODY_RETRIES, VastClient

KEY = "test-key-5f3a9c1e7b2d4a60"
T = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)


def fast_client(url: str, key: str = KEY, **overrides: object) -> VastClient:
    """A client with tiny waits so fault tests stay fast."""
    options: dict[str, object] = {
        "min_interval": 0.0, "connect_timeout": 1.0, "read_timeout": 2.0,
        "max_attempts": 6, "max_retry_seconds": 10.0, "backoff_base": 0.01,
        "backoff_max": 0.05, "simulated_time": T,
    }
    options.update(overrides)
    return VastClient(key, url, **options)  # type: ignore[arg-type]


def served(records: list) -> list:
    """Records as they look after a JSON round trip (what the wire carries)."""
    return json.loads(json.dumps(records))


@pytest.fixture(scope="module")
def fleet() -> FleetModel:
    return FleetModel(seed=7, size=80)


@pytest.fixture(scope="module")
def expected(fleet: FleetModel) -> list:
    records = served(fleet.records_at(T))
    assert len(records) > 50, "the fleet must span several pages for these tests"
    return records


@pytest.fixture(scope="module")
def sim(fleet: FleetModel) -> Iterator[SimulatorServer]:
    with SimulatorServer({KEY: fleet}) as server:
        yield server


def simulator(fleet: FleetModel, **options: object) -> SimulatorServer:
    return SimulatorServer({KEY: fleet}, **options)  # type: ignore[arg-type]


# -- a scripted loopback server --

Reply = tuple[int, dict[str, str], bytes]


class Scripted:
    """A loopback HTTP server whose answers come from `respond(path, query, headers)`."""

    def __init__(self, respond: Callable[[str, dict[str, str], dict[str, str]], Reply]):
        self.respond = respond
        self.seen: list[tuple[str, dict[str, str], dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                headers = dict(self.headers.items())
                outer.seen.append((parts.path, query, headers))
                status, extra, body = outer.respond(parts.path, query, headers)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       kwargs={"poll_interval": 0.02})

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def json_reply(body: object, status: int = 200, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


def page(ids: list[int], token: str | None, total: int | None = None) -> Reply:
    return json_reply({"success": True, "instances_found": len(ids), "total_instances": total,
                       "next_token": token, "instances": [{"id": i} for i in ids]})


def paged(pages: list[list[int]], total: int | None = None) -> Callable[..., Reply]:
    """Serve `pages` in order, chained by tokens p1, p2, ...; the last has a null token."""
    def respond(path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        index = int(query.get("after_token", "p0")[1:])
        token = f"p{index + 1}" if index + 1 < len(pages) else None
        return page(pages[index], token, total)
    return respond


# -- listing against the simulator --


def test_lists_every_page_in_id_order(sim: SimulatorServer, expected: list) -> None:
    before = len(sim.request_log)
    listing = fast_client(sim.url).list_instances()
    assert listing.records == expected
    assert listing.pages == math.ceil(len(expected) / 25) >= 3
    assert listing.requests == listing.pages and listing.retries == 0
    assert listing.duplicates_dropped == 0
    assert listing.total_reported == len(expected)
    calls = sim.request_log[before:]
    assert [path for _, path, _ in calls] == ["/api/v1/instances/"] * listing.pages


def test_iter_pages_streams_pages_of_at_most_25(sim: SimulatorServer, expected: list) -> None:
    pages = list(fast_client(sim.url).iter_instance_pages())
    assert all(0 < len(p) <= 25 for p in pages)
    assert [r for p in pages for r in p] == expected


def test_simulated_time_header_selects_the_moment(sim: SimulatorServer, fleet: FleetModel) -> None:
    later = datetime(2026, 2, 3, 6, 30, tzinfo=UTC)
    assert served(fleet.records_at(later)) != served(fleet.records_at(T)), "moments must differ"
    client = fast_client(sim.url)
    client.simulated_time = later
    assert client.list_instances().records == served(fleet.records_at(later))


def test_simulated_time_travels_in_the_header_the_simulator_reads() -> None:
    """What goes on the wire: the shared header name, a value the simulator parses back to
    the same moment, and no header at all without a simulated time."""
    later = datetime(2026, 2, 3, 6, 30, tzinfo=UTC)
    with Scripted(lambda *_: page([1], None, 1)) as stub:
        fast_client(stub.url, simulated_time=later).list_instances()
        fast_client(stub.url, simulated_time=None).list_instances()
    with_time, without = (headers for _, _, headers in stub.seen)
    assert parse_sim_time(with_time[SIM_TIME_HEADER]) == later
    assert SIM_TIME_HEADER not in without


def test_show_instance_and_gone_instance(sim: SimulatorServer, fleet: FleetModel,
                                         expected: list) -> None:
    client = fast_client(sim.url)
    chosen = expected[len(expected) // 2]["id"]
    assert client.show_instance(chosen) == served([fleet.record(chosen, T)])[0]
    assert client.show_instance(max(r["id"] for r in expected) + 10_000) is None
    with pytest.raises(ValueError):
        client.show_instance(0)


def test_charges_of_day_pages_through_every_contract_of_that_day(fleet: FleetModel) -> None:
    day = date(2026, 1, 20)
    midnight = datetime(2026, 1, 20, tzinfo=UTC)
    billed = fleet.charges(midnight, midnight + timedelta(days=1)) + fleet.volume_charges(
        midnight, midnight + timedelta(days=1))
    assert len(billed) > 5
    with simulator(fleet, charges_page_size=3) as server:
        client = fast_client(server.url, simulated_time=datetime(2026, 2, 1, tzinfo=UTC))
        listing = client.charges_of_day(day)
        assert sorted(r["source"] for r in listing.results) == sorted(
            f"{c.kind}-{c.instance_id}" for c in billed)
        assert listing.pages == math.ceil(len(billed) / 3) == client.stats.pages
        assert (listing.window_start, listing.window_end) == (
            int(midnight.timestamp()), int(midnight.timestamp()) + 86_399)
        assert listing.total_reported == len(billed)
        asked = server.charges_log
        assert {(r.gte, r.lte) for r in asked} == {(listing.window_start, listing.window_end)}
        assert {r.limit for r in asked} == {500}, "asks the maximum, gets what the server gives"
        volumes = client.charges_of_day(day, types=["volume"])
        assert {r["type"] for r in volumes.results} == {"volume"}
        with pytest.raises(ValueError):
            client.charges_of_day(midnight)


def test_legacy_list_is_retired(sim: SimulatorServer) -> None:
    with pytest.raises(EndpointRetiredError, match=r"/api/v0/instances/.*410"):
        fast_client(sim.url).list_instances_legacy()


# -- faults --


def test_server_min_interval_429_then_recovers(fleet: FleetModel, expected: list) -> None:
    with simulator(fleet, min_interval=0.15) as server:
        client = fast_client(server.url, max_attempts=20)
        listing = client.list_instances()
        assert listing.records == expected
        assert client.stats.rate_limited > 0 and listing.retries > 0


def test_client_min_interval_avoids_429(fleet: FleetModel, expected: list) -> None:
    with simulator(fleet, min_interval=0.1) as server:
        client = fast_client(server.url, min_interval=0.2)
        started = time.monotonic()
        listing = client.list_instances()
        assert listing.records == expected
        assert client.stats.rate_limited == 0
        assert time.monotonic() - started >= 0.2 * (listing.pages - 1)


@pytest.mark.parametrize(("fault", "rate"), [
    ("rate_429", 0.5), ("rate_5xx", 0.5), ("rate_truncated", 0.25), ("rate_html", 0.5),
])
def test_occasional_faults_are_retried(fleet: FleetModel, expected: list, fault: str,
                                       rate: float) -> None:
    faults = FaultConfig(**{fault: rate}, seed=11)
    with simulator(fleet, faults=faults) as server:
        client = fast_client(server.url, max_attempts=12)
        for _ in range(3):
            listing = client.list_instances()
            assert listing.records == expected
            assert listing.requests == listing.pages + listing.retries
        refused = sum(status != 200 for _, _, status in server.request_log)
    assert client.stats.retries > 0
    if fault != "rate_truncated":  # a truncated body is logged as the 200 it started as
        assert client.stats.retries == refused


def test_slow_answer_times_out_then_succeeds(fleet: FleetModel, expected: list) -> None:
    faults = FaultConfig(rate_slow=0.3, slow_seconds=1.0, seed=5)
    with simulator(fleet, faults=faults) as server:
        client = fast_client(server.url, read_timeout=0.3, max_attempts=12)
        listing = client.list_instances()
        assert listing.records == expected and listing.retries > 0


@pytest.mark.parametrize(("fault", "cause"), [
    ("rate_5xx", r"HTTP 50[234]"), ("rate_429", "HTTP 429"), ("rate_slow", "read timeout"),
])
def test_persistent_faults_exhaust_retries(fleet: FleetModel, fault: str, cause: str) -> None:
    faults = FaultConfig(**{fault: 1.0}, slow_seconds=1.0)
    with simulator(fleet, faults=faults) as server:
        client = fast_client(server.url, max_attempts=3, read_timeout=0.2)
        with pytest.raises(RetriesExhaustedError, match=cause) as caught:
            client.list_instances()
        assert not isinstance(caught.value, ApiUnreachableError)
        assert "/api/v1/instances/" in str(caught.value)
        assert client.stats.requests == 3 and client.stats.retries == 2


def test_truncated_bodies_fail_after_a_few_tries(fleet: FleetModel) -> None:
    with simulator(fleet, faults=FaultConfig(rate_truncated=1.0)) as server:
        client = fast_client(server.url)
        with pytest.raises(BadResponseError, match="truncated or malformed JSON"):
            client.list_instances()
        assert client.stats.requests == BAD_BODY_RETRIES + 1


def test_html_gateway_pages_are_retried_until_exhausted(fleet: FleetModel) -> None:
    with simulator(fleet, faults=FaultConfig(rate_html=1.0)) as server:
        client = fast_client(server.url, max_attempts=4)
        with pytest.raises(RetriesExhaustedError, match="HTTP 502"):
            client.list_instances()
        assert client.stats.requests == 4


def test_html_page_with_200_is_a_bad_response() -> None:
    html = b"<html><body>Sign in to continue</body></html>"
    with Scripted(lambda *_: (200, {"Content-Type": "text/html"}, html)) as stub:
        client = fast_client(stub.url)
        with pytest.raises(BadResponseError, match="HTML page"):
            client.list_instances()
        assert len(stub.seen) == BAD_BODY_RETRIES + 1


def test_retry_time_is_bounded(fleet: FleetModel) -> None:
    with simulator(fleet, faults=FaultConfig(rate_5xx=1.0)) as server:
        client = fast_client(server.url, max_attempts=1000, max_retry_seconds=0.5,
                             backoff_base=0.1, backoff_max=0.2)
        with pytest.raises(RetriesExhaustedError) as caught:
            client.list_instances()
    # The time budget, not the attempt budget, ended the retries.
    assert 1 < client.stats.requests < 1000
    assert client.stats.retries == client.stats.requests - 1
    assert f"after {client.stats.requests} attempts" in str(caught.value)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dead_server_is_unreachable_after_the_attempt_budget() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    client = VastClient(KEY, url, backoff_base=0.05, backoff_max=0.2, max_attempts=4)
    with pytest.raises(ApiUnreachableError, match="check VAST_URL") as caught:
        client.list_instances()
    assert url in str(caught.value) and client.stats.requests == 4


def test_retry_after_is_honoured() -> None:
    answers = iter([json_reply({"detail": "slow down"}, 429, **{"Retry-After": "0.4"})])

    def respond(path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        return next(answers, None) or page([1, 2], None, 2)

    with Scripted(respond) as stub:
        client = fast_client(stub.url)
        started = time.monotonic()
        assert [r["id"] for r in client.list_instances().records] == [1, 2]
        assert time.monotonic() - started >= 0.4
        assert client.stats.rate_limited == 1


def test_redirects_are_not_followed() -> None:
    def respond(path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        return 301, {"Location": "http://127.0.0.2:9/steal"}, b""

    with Scripted(respond) as stub:
        with pytest.raises(BadResponseError, match="redirect"):
            fast_client(stub.url).list_instances()
        assert len(stub.seen) == 1


def test_body_without_instances_is_a_bad_response() -> None:
    with Scripted(lambda *_: json_reply({"success": True, "next_token": None})) as stub:
        client = fast_client(stub.url)
        with pytest.raises(BadResponseError, match="'instances'"):
            client.list_instances()
        assert client.stats.requests == 1


# -- auth, tokens, other errors --


def test_wrong_key_is_an_auth_error(sim: SimulatorServer) -> None:
    wrong = "wrong-key-0123456789abcdef"
    with pytest.raises(AuthError, match=r"404 auth_error.*VAST_API_KEY") as caught:
        fast_client(sim.url, key=wrong).list_instances()
    assert wrong not in str(caught.value)


class KeylessSession(requests.Session):
    """A session that drops the Authorization header on the way out (a key-less caller)."""

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        request.headers.pop("Authorization", None)
        return super().send(request, **kwargs)


def test_missing_key_is_an_auth_error(sim: SimulatorServer) -> None:
    client = fast_client(sim.url, session=KeylessSession())
    with pytest.raises(AuthError, match="403"):
        client.list_instances()


def test_refused_cursor_is_a_bad_token_error() -> None:
    def respond(path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        if "after_token" in query:
            return json_reply({"success": False, "error": "invalid_token",
                               "msg": "Invalid pagination token"}, 400)
        return page([1], "stale", 2)

    with Scripted(respond) as stub, pytest.raises(BadTokenError, match="invalid_token"):
        fast_client(stub.url).list_instances()


def test_other_client_errors_quote_the_server_briefly() -> None:
    long_message = "Error in query parameters: " + "x" * 500

    def respond(path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        return json_reply({"success": False, "error": "invalid_request", "msg": long_message}, 400)

    with Scripted(respond) as stub, pytest.raises(VastApiError) as caught:
        fast_client(stub.url).list_instances()
    text = str(caught.value)
    assert "invalid_request" in text and "Error in query parameters" in text
    assert len(text) < 400 and type(caught.value) is VastApiError


# -- pagination safety --


def test_repeated_ids_are_dropped_and_counted() -> None:
    with Scripted(paged([[1, 2, 3], [3, 4], [2, 4, 5]], total=5)) as stub:
        listing = fast_client(stub.url).list_instances()
    assert [r["id"] for r in listing.records] == [1, 2, 3, 4, 5]
    assert listing.duplicates_dropped == 3 and listing.pages == 3


def test_repeating_cursor_stops() -> None:
    with Scripted(lambda *_: page([1, 2], "same", 2)) as stub:
        with pytest.raises(BadResponseError, match="loop forever"):
            fast_client(stub.url).list_instances()
        assert len(stub.seen) == 2


def test_endless_cursor_with_new_ids_stops_at_the_page_cap() -> None:
    def respond(path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        n = int(query.get("after_token", "0"))
        return page([n * 25 + i for i in range(25)], str(n + 1), total=50)

    with Scripted(respond) as stub:
        with pytest.raises(BadResponseError, match="loop forever"):
            fast_client(stub.url).list_instances()
        assert 2 < len(stub.seen) <= 20


def test_endless_cursor_without_new_ids_stops_early() -> None:
    def respond(path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        n = int(query.get("after_token", "0"))
        return page([1, 2], str(n + 1), total=None)

    with Scripted(respond) as stub:
        with pytest.raises(BadResponseError, match="loop forever"):
            fast_client(stub.url).list_instances()
        assert len(stub.seen) <= 5


def first_seen_unique(pages: list[list[int]]) -> list[int]:
    out: list[int] = []
    for ids in pages:
        out += [i for i in ids if i not in out]
    return out


def has_stall(pages: list[list[int]], run: int = 3) -> bool:
    """Whether `run` pages in a row (not counting the last page) bring no new id."""
    seen: set[int] = set()
    streak = 0
    for number, ids in enumerate(pages, start=1):
        streak = 0 if set(ids) - seen else streak + 1
        seen |= set(ids)
        if streak >= run and number < len(pages):
            return True
    return False


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.integers(1, 40), max_size=25), min_size=1, max_size=8))
def test_any_overlapping_pages_yield_each_id_once(pages: list[list[int]]) -> None:
    pages = [list(dict.fromkeys(p)) for p in pages]  # one page never repeats an id itself
    with Scripted(paged(pages)) as stub:
        client = fast_client(stub.url)
        if has_stall(pages):
            with pytest.raises(BadResponseError):
                client.list_instances()
            return
        listing = client.list_instances()
    ids = [r["id"] for r in listing.records]
    assert ids == first_seen_unique(pages)
    assert listing.duplicates_dropped == sum(map(len, pages)) - len(ids)
    assert listing.pages == len(pages)


# -- configuration and secrecy --


def test_simulated_time_refused_for_real_hosts() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        VastClient(KEY, "https://console.vast.ai", simulated_time=T)
    client = VastClient(KEY, "https://console.vast.ai")
    with pytest.raises(ConfigError, match="loopback"):
        client.simulated_time = T
    assert SIM_TIME_HEADER not in client._transport.headers()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8", "http://localhost:8", "http://[::1]:8",
                                 "http://127.9.8.7"])
def test_loopback_urls_accept_simulated_time(url: str) -> None:
    assert VastClient(KEY, url, simulated_time=T).simulated_time == T


@pytest.mark.parametrize(("key", "url"), [
    ("", "https://console.vast.ai"), ("  ", "https://console.vast.ai"),
    ("abc\ndef", "https://console.vast.ai"), ("abc def", "https://console.vast.ai"),
    (KEY, "http://console.vast.ai"), (KEY, "ftp://console.vast.ai"), (KEY, "console.vast.ai"),
    (KEY, "https://user:pw@console.vast.ai"), (KEY, "https://console.vast.ai/?a=1"),
])
def test_bad_configuration_is_refused(key: str, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        VastClient(key, url)
    if key.strip():
        assert key not in str(caught.value)


def test_surrounding_whitespace_in_key_is_ignored(sim: SimulatorServer, expected: list) -> None:
    assert fast_client(sim.url, key=f"  {KEY}\n").list_instances().records == expected


def test_bare_fleet_is_served_under_the_demo_key(fleet: FleetModel, expected: list) -> None:
    with SimulatorServer(fleet) as server:
        assert fast_client(server.url, key=DEMO_API_KEY).list_instances().records == expected


def test_key_never_leaks(caplog: pytest.LogCaptureFixture, fleet: FleetModel) -> None:
    """Logs at DEBUG, error texts, reprs and URLs never carry any part of the key."""
    def echo(path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        said = f"your key {headers.get('Authorization', '')} is odd"
        return json_reply({"error": "invalid_request", "msg": said, "detail": said}, 400)

    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    faults = FaultConfig(rate_5xx=0.5, rate_429=0.2, seed=3)
    with simulator(fleet, faults=faults) as server, Scripted(echo) as stub:
        client = fast_client(server.url, max_attempts=20)
        texts += [repr(client), str(vars(client)), repr(client.list_instances())]
        for bad in (fast_client(stub.url), fast_client(f"http://127.0.0.1:{closed_port()}",
                                                       max_attempts=2)):
            with pytest.raises(VastApiError) as caught:
                bad.list_instances()
            texts += [str(caught.value), repr(caught.value)]
        texts += [path for _, path, _ in server.request_log]
        texts += [f"{path}?{query}" for path, query, _ in stub.seen]
    with pytest.raises(TypeError):
        pickle.dumps(client)
    texts += [record.getMessage() for record in caplog.records]
    assert any("/api/v1/instances/" in t for t in texts), "the capture saw nothing"
    assert any(f"your key Bearer {REDACTED}" in t for t in texts), \
        "the echoed key was not redacted"
    leaked = [t for t in texts if KEY in t or KEY[-6:] in t or KEY[:6] in t]
    assert leaked == []
    assert all(headers["Authorization"] == f"Bearer {KEY}" for _, _, headers in stub.seen)


def test_stats_count_and_reset(sim: SimulatorServer, expected: list) -> None:
    client = fast_client(sim.url)
    client.list_instances()
    stats = client.stats
    assert stats.pages == stats.requests == math.ceil(len(expected) / 25)
    assert stats.bytes > 1000 * len(expected) and stats.elapsed > 0
    stats.reset()
    assert (stats.requests, stats.pages, stats.bytes, stats.elapsed) == (0, 0, 0, 0.0)
