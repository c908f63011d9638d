"""An embedded Vast.ai API simulator served over real HTTP on loopback.

Nobody running the demo or CI has a Vast.ai account or internet access, so the client,
the demo and the tests talk to this server instead. It serves the endpoints, envelopes,
status codes and error bodies the reference describes (v1 keyset pagination, the retired
v0 list answering 410, show instance, billed charges, the current user (which the official
CLI asks for), 403/404 auth failures, 429 below the minimum interval with no Retry-After)
from a `FleetModel`, and can inject faults (`faults`).

This module is the server: its lifecycle, routing, auth, the rate limit and the fault
draw, in front of the endpoints (`instances`, `charges`), which speak the shared query
language (`filters`, `cursors`).

Simulator-only extension: a request carrying `X-Vast-Sim-Time` is answered for that
moment, so the demo can build days of history in seconds. The real client never sends it.
The Authorization header and keys are never logged or echoed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from pipeline.core.simtime import SIM_TIME_HEADER, parse_sim_time
from pipeline.sim.charges import ChargesEndpoint, ChargesRequest
from pipeline.sim.defaults import (
    CHARGES_PAGE_SERVED,
    DEFAULT_FLEET_SIZE,
    DEFAULT_PORT,
    DEFAULT_SEED,
    DEMO_API_KEY,
    EMBEDDED_MIN_INTERVAL,
    SEARCH_MIN_INTERVAL,
    SERVE_MIN_INTERVAL,
)
from pipeline.sim.faults import THROTTLE_TEXT, FaultConfig, FaultDrawer, throttled
from pipeline.sim.fleet import FleetModel
from pipeline.sim.handler import Handler
from pipeline.sim.instances import InstanceListings, show_instance, user_blob
from pipeline.sim.market import MarketModel
from pipeline.sim.replies import ApiError, Reply, bad_request, json_reply, server_error
from pipeline.sim.search import body_query, legacy_query, search

# Names other modules import from here.
__all__ = ["DEMO_API_KEY", "SIM_TIME_HEADER", "THROTTLE_TEXT", "ChargesRequest",
           "FaultConfig", "SimulatorServer", "serve"]

NO_FAULTS = FaultConfig()
_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("instances_v1", re.compile(r"^/api/v1/instances/?$")),
    ("instances_v0", re.compile(r"^/api/v0/instances/?$")),
    ("instance_v0", re.compile(r"^/api/v0/instances/(?P<id>[^/]+)/?$")),
    ("charges_v0", re.compile(r"^/api/v0/charges/?$")),
    ("user_v0", re.compile(r"^/api/v0/users/current/?$")),
    ("bundles_v0", re.compile(r"^/api/v0/bundles/?$")),
)
# Endpoints answering more than GET.
_METHODS = {"bundles_v0": ("GET", "POST")}


class SimulatorServer:
    """A real ThreadingHTTPServer on loopback answering like the Vast.ai API.

    `fleets` maps an API key to that account's fleet; a bare `FleetModel` is served under
    `DEMO_API_KEY`. Use as a context manager or call `start()`/`stop()`.
    """

    def __init__(self, fleets: Mapping[str, FleetModel] | FleetModel, *,
                 host: str = "127.0.0.1", port: int = 0,
                 min_interval: float = EMBEDDED_MIN_INTERVAL,
                 faults: FaultConfig = NO_FAULTS,
                 clock: Callable[[], datetime] | None = None, keep_log: bool = True,
                 charges_page_size: int = CHARGES_PAGE_SERVED,
                 market: MarketModel | None = None,
                 search_min_interval: float = SEARCH_MIN_INTERVAL,
                 search_429_rate: float = 0.0) -> None:
        self._fleets: dict[str, FleetModel] = (
            {DEMO_API_KEY: fleets} if isinstance(fleets, FleetModel) else dict(fleets))
        self.host = host
        self.port = port
        self.min_interval = min_interval
        self.faults = faults
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.requests_served = 0
        # (method, path, status) per request, for tests; off in the long-running `serve()`.
        self.keep_log = keep_log
        self.request_log: list[tuple[str, str, int]] = []
        self._charges = ChargesEndpoint(charges_page_size, keep_log)
        self._instances = InstanceListings()
        self._fault_drawer = FaultDrawer(faults)
        # The offer search: one market for every account, built over all the fleets.
        self.market = market if market is not None else MarketModel(list(self._fleets.values()))
        self.search_min_interval = search_min_interval
        self._search_faults = FaultDrawer(FaultConfig(rate_429=search_429_rate,
                                                      seed=faults.seed + 1))
        self._forced_search_429s = 0
        self._lock = threading.Lock()
        self._last_call: dict[tuple[str, str], float] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never show keys
        return f"SimulatorServer(url={self.url!r}, accounts={len(self._fleets)})"

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulator is not started; call start() first")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    @property
    def charges_log(self) -> list[ChargesRequest]:
        """Every answered charges request, in order (when `keep_log`)."""
        return self._charges.log

    @property
    def charges_page_size(self) -> int:
        return self._charges.page_size

    def start(self) -> SimulatorServer:
        """Bind and serve in a daemon thread; returns self for chaining."""
        if self._httpd is not None:
            return self
        handler = type("SimHandler", (Handler,), {"sim": self})
        httpd = ThreadingHTTPServer((self.host, self.port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="vast-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (in-flight slow replies are abandoned)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def adjust_charge(self, key: str, contract_id: int, day: date, item_type: str,
                      delta: float) -> None:
        """Settle a day's bill late: add `delta` $ to one item of one contract on `day`.

        Every later answer for a window holding the whole UTC day shows it (the item is
        created if the contract had none of that type), as the real bill changes for days
        after they ended. Adjustments of the same item add up.
        """
        if key not in self._fleets:
            raise KeyError("no account is served under that key")
        self._charges.adjust(key, contract_id, day, item_type, delta)

    def fail_charges_after(self, pages: int | None, status: int = 503) -> None:
        """Answer `status` to every charges request after `pages` more good ones (None: heal).

        Lets tests break a listing in its middle, after some pages were served.
        """
        self._charges.fail_after(pages, status)

    def throttle_searches(self, count: int) -> None:
        """Answer 429 to the next `count` offer searches (a fault knob for tests)."""
        with self._lock:
            self._forced_search_429s = count

    # ---- request handling -------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str],
               body: bytes = b"", *, client: str = "") -> Reply:
        """Answer one request (routing, auth, throttle, faults, then the endpoint)."""
        parts = urlsplit(raw_path)
        path = parts.path
        try:
            reply = self._dispatch(method, path, parse_qs(parts.query, keep_blank_values=True),
                                   headers, body, client)
        except ApiError as err:
            reply = err.reply
        except Exception:  # a bug or an input nobody foresaw: answer, never drop the line
            reply = server_error()
        self.log_request(method, path, reply.status)
        return reply

    def log_request(self, method: str, path: str, status: int) -> None:
        """Count one answered request and, when `keep_log`, remember (method, path, status)."""
        with self._lock:
            self.requests_served += 1
            if self.keep_log:
                self.request_log.append((method, path, status))

    def _dispatch(self, method: str, path: str, query: dict[str, list[str]],
                  headers: Mapping[str, str], body: bytes, client: str) -> Reply:
        endpoint, match = _route(path)
        if endpoint is None:
            raise ApiError(404, "not_found", f"No API endpoint at {path}.")
        if method not in _METHODS.get(endpoint, ("GET",)):
            raise ApiError(405, "method_not_allowed", f"{method} is not supported here.")
        fleet, key = self._authenticate(headers)
        if endpoint == "bundles_v0":
            return self._search(method, query, headers, body, client)
        if not self._admit(key, endpoint, self.min_interval):
            return throttled()
        fault = self._fault_drawer.draw()
        if fault is not None and fault.status != 200:
            return fault
        now = self._moment(headers)
        if endpoint == "instances_v1":
            reply = self._instances.page(fleet, query, now)
        elif endpoint == "instances_v0":
            raise ApiError(410, "deprecated_endpoint",
                           "This endpoint is deprecated for your account. "
                           "Use /api/v1/instances/ instead.")
        elif endpoint == "instance_v0":
            reply = show_instance(fleet, match.group("id") if match else "", now)
        elif endpoint == "user_v0":
            reply = json_reply(user_blob(fleet))
        else:
            reply = self._charges.answer(fleet, key, query, now)
        if fault is not None:  # a 200-class fault: slow and/or truncated
            reply.delay, reply.truncate = fault.delay, fault.truncate
        return reply

    def _search(self, method: str, query: dict[str, list[str]], headers: Mapping[str, str],
                body: bytes, client: str) -> Reply:
        """The offer search, with its own rate limit per IP (Vast.ai: ~10 a minute)."""
        if not self._admit(client, "bundles_v0", self.search_min_interval):
            return throttled()
        with self._lock:
            forced = self._forced_search_429s > 0
            self._forced_search_429s -= forced
        fault = self._search_faults.draw()
        if forced or fault is not None:
            return throttled()
        spec = body_query(body) if method == "POST" else legacy_query(query)
        return search(self.market, spec, self._moment(headers))

    def _authenticate(self, headers: Mapping[str, str]) -> tuple[FleetModel, str]:
        auth = headers.get("Authorization")
        if not auth:
            raise ApiError(403, "auth_error", "This action requires login.")
        scheme, _, token = auth.strip().partition(" ")
        fleet = self._fleets.get(token.strip()) if scheme.lower() == "bearer" else None
        if fleet is None:
            raise ApiError(404, "auth_error", "Invalid user key")
        return fleet, token.strip()

    def _admit(self, caller: str, endpoint: str, interval: float) -> bool:
        """Enforce the per-caller, per-endpoint minimum interval between accepted calls."""
        if interval <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            last = self._last_call.get((caller, endpoint))
            if last is not None and now - last < interval:
                return False
            self._last_call[(caller, endpoint)] = now
        return True

    def _moment(self, headers: Mapping[str, str]) -> datetime:
        raw = headers.get(SIM_TIME_HEADER)
        if raw is None:
            return self.clock()
        try:
            return parse_sim_time(raw)
        except ValueError:
            raise bad_request(f"{SIM_TIME_HEADER} must be ISO-8601 UTC or epoch seconds.") \
                from None


def _route(path: str) -> tuple[str | None, re.Match[str] | None]:
    for name, pattern in _ROUTES:
        match = pattern.match(path)
        if match:
            return name, match
    return None, None


def serve(port: int = DEFAULT_PORT, seed: int = DEFAULT_SEED, size: int = DEFAULT_FLEET_SIZE,
          *, min_interval: float = SERVE_MIN_INTERVAL, drift_rate: float = 0.0) -> None:
    """Serve one simulated account until Ctrl-C (`vast-pipeline simulator`)."""
    fleet = FleetModel(seed=seed, size=size, drift_rate=drift_rate)
    server = SimulatorServer(fleet, port=port, min_interval=min_interval,
                             keep_log=False).start()
    print(f"Vast.ai API simulator listening on {server.url}", flush=True)
    print(f"  VAST_URL={server.url}  VAST_API_KEY={DEMO_API_KEY}  (demo key, not a secret)",
          flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
