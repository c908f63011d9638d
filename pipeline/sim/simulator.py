"""An embedded Vast.ai API simulator served over real HTTP on loopback.

Nobody running the demo or CI has a Vast.ai account or internet access, so the client,
the demo and the tests talk to this server instead. It serves the endpoints, envelopes,
status codes and error bodies the reference describes (v1 keyset pagination, the retired
v0 list answering 410, show instance, billed charges, the current user (which the official
CLI asks for), 403/404 auth failures, 429 below
the minimum interval with no Retry-After) from a `FleetModel`, and can inject faults
(429, 5xx, slow, truncated and HTML responses) at configurable rates.

Billed charges follow the reference: one row per contract (instances and a few volumes)
over the requested window, pages of a size the server chooses (`charges_page_size`, fewer
than asked), cursors valid only with the filters that issued them; tests can settle a day
late (`adjust_charge`) or break a listing after some pages (`fail_charges_after`).

Simulator-only extension: a request carrying `X-Vast-Sim-Time` is answered for that
moment, so the demo can build days of history in seconds. The real client never sends it.
The Authorization header and keys are never logged or echoed.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from pipeline.core.simtime import SIM_TIME_HEADER, parse_sim_time
from pipeline.sim.fleet import COMPUTED_KEYS, RECORD_KEYS, Charge, FleetModel, to_epoch

DEMO_API_KEY = "sim-demo-key"
V1_PAGE_MAX = 25
V1_PAGE_NONPOSITIVE = 5
CHARGES_PAGE_DEFAULT = 100
CHARGES_PAGE_MAX = 500
# The most results one charges page carries, whatever `limit` asks: the real service may
# return fewer rows than asked, so clients must follow next_token. Small enough that a day
# of the demo fleet takes a few pages.
CHARGES_PAGE_SERVED = 20
_LISTING_CACHE_MAX = 8
THROTTLE_TEXT = "API requests too frequent: endpoint threshold=1.0"
FILTER_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "notin")
_NESTED_KEYS = frozenset({"search", "instance", "extra_env", "ports", "image_args",
                          "volume_info"})
STORED_KEYS = frozenset(RECORD_KEYS) - COMPUTED_KEYS
ORDERABLE_KEYS = frozenset(RECORD_KEYS) - _NESTED_KEYS

_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("instances_v1", re.compile(r"^/api/v1/instances/?$")),
    ("instances_v0", re.compile(r"^/api/v0/instances/?$")),
    ("instance_v0", re.compile(r"^/api/v0/instances/(?P<id>[^/]+)/?$")),
    ("charges_v0", re.compile(r"^/api/v0/charges/?$")),
    ("user_v0", re.compile(r"^/api/v0/users/current/?$")),
)
_HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")


@dataclass(frozen=True)
class FaultConfig:
    """Rates (0..1, per request) of injected faults, drawn from a seeded generator."""

    rate_429: float = 0.0        # extra random 429s (on top of real min-interval 429s)
    rate_5xx: float = 0.0        # random 502/503/504
    rate_slow: float = 0.0       # respond after `slow_seconds` (to trigger client read timeouts)
    slow_seconds: float = 2.0
    rate_truncated: float = 0.0  # 200 with a body cut mid-JSON
    rate_html: float = 0.0       # 502 with an HTML error page body
    seed: int = 0


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    truncate: bool = False
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Listing:
    """One filtered, sorted listing: ((sort values, served record), ...) plus envelope counts."""

    keyed: tuple[tuple[dict[str, Any], Any], ...]
    total: int
    label_counts: dict[str, int]


@dataclass(frozen=True)
class ChargesRequest:
    """One answered request to /api/v0/charges/, for tests: the window and the page asked."""

    gte: float | None
    lte: float | None
    types: tuple[str, ...] | None
    limit: int | None
    after_token: str | None
    status: int


class _ApiError(Exception):
    """An error answer: status plus the JSON body the real service sends."""

    def __init__(self, status: int, error: str | None, msg: str) -> None:
        super().__init__(msg)
        body: dict[str, Any] = {"success": False}
        if error is not None:
            body["error"] = error
        body["msg"] = msg
        self.reply = _Reply(status, orjson.dumps(body))


def _bad_request(msg: str, error: str = "invalid_request") -> _ApiError:
    return _ApiError(400, error, msg)


def _server_error() -> _Reply:
    return _ApiError(500, "server_error", "Internal error.").reply


class SimulatorServer:
    """A real ThreadingHTTPServer on loopback answering like the Vast.ai API.

    `fleets` maps an API key to that account's fleet; a bare `FleetModel` is served under
    `DEMO_API_KEY`. Use as a context manager or call `start()`/`stop()`.
    """

    def __init__(self, fleets: Mapping[str, FleetModel] | FleetModel, *,
                 host: str = "127.0.0.1", port: int = 0, min_interval: float = 0.0,
                 faults: FaultConfig = FaultConfig(),
                 clock: Callable[[], datetime] | None = None, keep_log: bool = True,
                 charges_page_size: int = CHARGES_PAGE_SERVED) -> None:
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
        self.charges_log: list[ChargesRequest] = []
        if charges_page_size < 1:
            raise ValueError("charges_page_size must be at least 1")
        self.charges_page_size = charges_page_size
        # Late settlement: (key, contract id, day start epoch, item type) -> $ added.
        self._adjustments: dict[tuple[str, int, int, str], float] = {}
        # Charges pages still answered before every further one fails (None: no fault).
        self._charges_pages_left: int | None = None
        self._charges_fault_status = 503
        self._lock = threading.Lock()
        self._last_call: dict[tuple[str, str], float] = {}
        self._fault_rng = random.Random(faults.seed)
        self._charges_cache: dict[tuple[int, float, float], list[Charge]] = {}
        self._listing_cache: dict[tuple[Any, ...], _Listing] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never show keys
        return f"SimulatorServer(url={self.url!r}, accounts={len(self._fleets)})"

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulator is not started; call start() first")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> SimulatorServer:
        """Bind and serve in a daemon thread; returns self for chaining."""
        if self._httpd is not None:
            return self
        handler = type("SimHandler", (_Handler,), {"sim": self})
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
        slot = (key, int(contract_id), int(to_epoch(datetime(day.year, day.month, day.day,
                                                            tzinfo=UTC))), item_type)
        with self._lock:
            self._adjustments[slot] = self._adjustments.get(slot, 0.0) + delta

    def fail_charges_after(self, pages: int | None, status: int = 503) -> None:
        """Answer `status` to every charges request after `pages` more good ones (None: heal).

        Lets tests break a listing in its middle, after some pages were served.
        """
        with self._lock:
            self._charges_pages_left = pages
            self._charges_fault_status = status

    # ---- request handling -------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str]) -> _Reply:
        """Answer one request (routing, auth, throttle, faults, then the endpoint)."""
        parts = urlsplit(raw_path)
        path = parts.path
        try:
            reply = self._dispatch(method, path, parse_qs(parts.query, keep_blank_values=True),
                                   headers)
        except _ApiError as err:
            reply = err.reply
        except Exception:  # a bug or an input nobody foresaw: answer, never drop the line
            reply = _server_error()
        self.log_request(method, path, reply.status)
        return reply

    def log_request(self, method: str, path: str, status: int) -> None:
        """Count one answered request and, when `keep_log`, remember (method, path, status)."""
        with self._lock:
            self.requests_served += 1
            if self.keep_log:
                self.request_log.append((method, path, status))

    def _dispatch(self, method: str, path: str, query: dict[str, list[str]],
                  headers: Mapping[str, str]) -> _Reply:
        endpoint, match = _route(path)
        if endpoint is None:
            raise _ApiError(404, "not_found", f"No API endpoint at {path}.")
        if method != "GET":
            raise _ApiError(405, "method_not_allowed", f"{method} is not supported here.")
        fleet, key = self._authenticate(headers)
        if not self._admit(key, endpoint):
            return _Reply(429, THROTTLE_TEXT.encode(), "text/plain; charset=utf-8")
        fault = self._draw_fault()
        if fault is not None and fault.status != 200:
            return fault
        now = self._moment(headers)
        if endpoint == "instances_v1":
            reply = self._list_v1(fleet, query, now)
        elif endpoint == "instances_v0":
            raise _ApiError(410, "deprecated_endpoint",
                            "This endpoint is deprecated for your account. "
                            "Use /api/v1/instances/ instead.")
        elif endpoint == "instance_v0":
            reply = self._show_instance(fleet, match.group("id") if match else "", now)
        elif endpoint == "user_v0":
            reply = _Reply(200, orjson.dumps(user_blob(fleet)))
        else:
            reply = self._charges(fleet, key, query, now)
        if fault is not None:  # a 200-class fault: slow and/or truncated
            reply.delay, reply.truncate = fault.delay, fault.truncate
        return reply

    def _authenticate(self, headers: Mapping[str, str]) -> tuple[FleetModel, str]:
        auth = headers.get("Authorization")
        if not auth:
            raise _ApiError(403, "auth_error", "This action requires login.")
        scheme, _, token = auth.strip().partition(" ")
        fleet = self._fleets.get(token.strip()) if scheme.lower() == "bearer" else None
        if fleet is None:
            raise _ApiError(404, "auth_error", "Invalid user key")
        return fleet, token.strip()

    def _admit(self, key: str, endpoint: str) -> bool:
        """Enforce the per-key, per-endpoint minimum interval between accepted calls."""
        if self.min_interval <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            last = self._last_call.get((key, endpoint))
            if last is not None and now - last < self.min_interval:
                return False
            self._last_call[(key, endpoint)] = now
        return True

    def _draw_fault(self) -> _Reply | None:
        f = self.faults
        with self._lock:
            draws = [self._fault_rng.random() for _ in range(6)]
        if draws[0] < f.rate_429:
            return _Reply(429, THROTTLE_TEXT.encode(), "text/plain; charset=utf-8")
        if draws[1] < f.rate_5xx:
            status = (502, 503, 504)[int(draws[5] * 3)]
            return _Reply(status, orjson.dumps({"detail": "upstream unavailable"}))
        if draws[2] < f.rate_html:
            return _Reply(502, _HTML_502, "text/html")
        slow, truncated = draws[3] < f.rate_slow, draws[4] < f.rate_truncated
        if slow or truncated:
            return _Reply(200, b"", truncate=truncated, delay=f.slow_seconds if slow else 0.0)
        return None

    def _moment(self, headers: Mapping[str, str]) -> datetime:
        raw = headers.get(SIM_TIME_HEADER)
        if raw is None:
            return self.clock()
        try:
            return parse_sim_time(raw)
        except ValueError:
            raise _bad_request(f"{SIM_TIME_HEADER} must be ISO-8601 UTC or epoch seconds.") \
                from None

    # ---- endpoints ---------------------------------------------------------------------

    def _list_v1(self, fleet: FleetModel, query: dict[str, list[str]], now: datetime) -> _Reply:
        limit = _limit(query, default=V1_PAGE_MAX)
        limit = V1_PAGE_NONPOSITIVE if limit <= 0 else min(limit, V1_PAGE_MAX)
        predicate = _compile_filters(_json_param(query, "select_filters", {}))
        order = _order_by(_json_param(query, "order_by", [{"col": "id", "dir": "asc"}]))
        cols = _select_cols(_json_param(query, "select_cols", ["*"]))
        listing = self._sorted_listing(fleet, query, predicate, order, now)
        keyed = listing.keyed
        start = 0
        token = _single(query, "after_token")
        if token:
            cursor = _decode_cursor(token, [col for col, _ in order])
            start = _first_after(keyed, cursor, order)
        page = keyed[start:start + limit]
        next_token = _encode_cursor(order, page[-1][0]) if len(keyed) - start > limit else None
        body = {
            "success": True, "instances_found": len(page), "total_instances": listing.total,
            "label_counts": listing.label_counts, "next_token": next_token,
            "instances": [_project(served, cols) for _, served in page],
        }
        return _Reply(200, orjson.dumps(body))

    def _sorted_listing(self, fleet: FleetModel, query: dict[str, list[str]],
                        predicate: Callable[[dict[str, Any]], bool],
                        order: list[tuple[str, str]], now: datetime) -> _Listing:
        """The filtered, sorted fleet at `now`, shared by every page of one listing.

        Building it costs a pass over the whole fleet plus a sort, so it is cached per
        (fleet, moment, filters, order); entries are never mutated once stored, which lets
        concurrent handler threads share them.
        """
        key = (id(fleet), to_epoch(now), _single(query, "select_filters"), tuple(order))
        with self._lock:
            cached = self._listing_cache.get(key)
        if cached is not None:
            return cached
        rows = [(clean, served) for _, clean, served in fleet.entries_at(now) if predicate(clean)]
        label_counts: dict[str, int] = {}
        for clean, _ in rows:
            label = clean.get("label") or ""
            label_counts[label] = label_counts.get(label, 0) + 1
        keyed = [(_sort_values(clean, order), served) for clean, served in rows]
        keyed.sort(key=functools.cmp_to_key(lambda a, b: _compare_rows(a[0], b[0], order)))
        listing = _Listing(tuple(keyed), len(rows), label_counts)
        with self._lock:
            if len(self._listing_cache) >= _LISTING_CACHE_MAX:
                self._listing_cache.pop(next(iter(self._listing_cache)))
            self._listing_cache[key] = listing
        return listing

    def _show_instance(self, fleet: FleetModel, raw_id: str, now: datetime) -> _Reply:
        if not raw_id.isdigit():
            raise _ApiError(400, "invalid_args", f"Instance id {raw_id[:40]!r} is not a number.")
        return _Reply(200, orjson.dumps({"instances": fleet.record(int(raw_id), now)}))

    def _charges(self, fleet: FleetModel, key: str, query: dict[str, list[str]],
                 now: datetime) -> _Reply:
        """Per-contract charges over the window, keyset-paged, the cursor bound to the filters."""
        token = _single(query, "after_token")
        raw_limit = _single(query, "limit")
        try:
            gte, lte, types = _charge_filters(_json_param(query, "select_filters", None))
            reply = self._charges_page(fleet, key, query, now, (gte, lte, types), token)
        except _ApiError as err:
            self._log_charges(None, None, None, raw_limit, token, err.reply.status)
            raise
        self._log_charges(gte, lte, types, raw_limit, token, reply.status)
        return reply

    def _charges_page(self, fleet: FleetModel, key: str, query: dict[str, list[str]],
                      now: datetime, window: tuple[float, float, tuple[str, ...] | None],
                      token: str | None) -> _Reply:
        gte, lte, types = window
        with self._lock:
            if self._charges_pages_left is not None:
                if self._charges_pages_left <= 0:
                    return _Reply(self._charges_fault_status,
                                  orjson.dumps({"detail": "upstream unavailable"}))
                self._charges_pages_left -= 1
        limit = min(max(_limit(query, default=CHARGES_PAGE_DEFAULT), 1), CHARGES_PAGE_MAX,
                    self.charges_page_size)
        latest_first = _json_param(query, "latest_first", True) not in (False, "false", 0)
        binding = _filters_digest(_single(query, "select_filters"), latest_first)
        # lte is inclusive, to the second: the window is [gte, lte + 1), clipped at `now`.
        start, end = gte, min(lte + 1, to_epoch(now))
        charges = self._window_charges(fleet, start, end, types)
        order = [("start", "desc" if latest_first else "asc"),
                 ("id", "desc" if latest_first else "asc")]
        keyed = [({"start": int(c.start), "id": c.instance_id}, c) for c in charges]
        keyed.sort(key=functools.cmp_to_key(lambda a, b: _compare_rows(a[0], b[0], order)))
        if token:
            cursor = _decode_cursor(token, ["start", "id"], binding)
            keyed = [pair for pair in keyed if _compare_rows(pair[0], cursor, order) > 0]
        page = keyed[:limit]
        more = len(keyed) > limit
        body = {
            "success": True, "count": len(page), "total": len(charges),
            "next_token": _encode_cursor(order, page[-1][0], binding) if more else None,
            "results": [self._adjusted(key, charge_result(c), gte, lte) for _, c in page],
        }
        return _Reply(200, orjson.dumps(body))

    def _window_charges(self, fleet: FleetModel, start: float, end: float,
                        types: tuple[str, ...] | None) -> list[Charge]:
        charges: list[Charge] = []
        if types is None or "instance" in types:
            charges += self._fleet_charges(fleet, start, end)
        if types is None or "volume" in types:
            charges += fleet.volume_charges(start, end)
        return charges

    def _adjusted(self, key: str, result: dict[str, Any], gte: float, lte: float) -> dict:
        """`result` with the late adjustments of the whole days inside [gte, lte]."""
        with self._lock:
            mine = [(cid, day, kind, delta) for (k, cid, day, kind), delta
                    in self._adjustments.items() if k == key]
        contract = int(result["source"].rsplit("-", 1)[1])
        for cid, day, kind, delta in mine:
            if cid != contract or not (gte <= day and day + 86_399 <= lte):
                continue
            item = next((i for i in result["items"] if i["type"] == kind), None)
            if item is None:
                item = {"start": result["start"], "end": result["end"], "type": kind,
                        "source": None, "description": "late adjustment", "amount": 0.0,
                        "metadata": {}, "items": []}
                result["items"].append(item)
            item["amount"] = round(item["amount"] + delta, 3)
            result["amount"] = round(result["amount"] + delta, 3)
        return result

    def _log_charges(self, gte: float | None, lte: float | None,
                     types: tuple[str, ...] | None, limit: str | None, token: str | None,
                     status: int) -> None:
        if not self.keep_log:
            return
        try:
            asked = int(limit) if limit is not None else None
        except ValueError:
            asked = None
        with self._lock:
            self.charges_log.append(ChargesRequest(gte, lte, types, asked, token, status))

    def _fleet_charges(self, fleet: FleetModel, start: float, end: float) -> list[Charge]:
        key = (id(fleet), start, end)
        with self._lock:
            cached = self._charges_cache.get(key)
        if cached is None:
            cached = fleet.charges(start, end)
            with self._lock:
                if len(self._charges_cache) > 16:
                    self._charges_cache.clear()
                self._charges_cache[key] = cached
        return cached


class _Handler(BaseHTTPRequestHandler):
    """Thin adapter from http.server to `SimulatorServer.handle`."""

    sim: SimulatorServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
    # meets the client's delayed ACK and every response stalls about 40 ms on keep-alive.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "vast-simulator"

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def _answer(self) -> None:
        raw_length = (self.headers.get("Content-Length") or "0").strip()
        if raw_length.isascii() and raw_length.isdigit():
            length = int(raw_length)
            if length:
                self.rfile.read(length)
            reply = self.sim.handle(self.command, self.path, self.headers)
        else:  # negative or garbage: the body cannot be framed, so answer and hang up
            reply = _bad_request("Content-Length must be a non-negative integer.").reply
            reply.headers["Connection"] = "close"
            self.sim.log_request(self.command, urlsplit(self.path).path, reply.status)
            self.close_connection = True
        body = reply.body
        if reply.truncate:
            body = body[: max(1, len(body) // 2)]
        try:
            if reply.delay:
                time.sleep(reply.delay)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's stderr log: tests stay quiet and nothing echoes headers."""


# ---- helpers -----------------------------------------------------------------------------

def user_blob(fleet: FleetModel) -> dict[str, Any]:
    """`/api/v0/users/current`: the official CLI asks it to tell a client from a host."""
    return {"id": 100_000 + fleet.seed, "username": f"sim-user-{fleet.seed}",
            "email": f"sim-user-{fleet.seed}@example.invalid", "fullname": "Simulated User",
            "credit": fleet.credit_balance, "balance": 0.0, "has_billing": True,
            "host_agreement_accepted": False, "can_pay": True, "user": True}


def charge_result(c: Charge) -> dict[str, Any]:
    """One `results` entry of /api/v0/charges/ in the documented shape."""
    start, end = int(c.start), int(c.end)
    days = max(1, round((c.end - c.start) / 86400))
    gpu_rate = c.gpu_amount / c.gpu_hours if c.gpu_hours else 0.0
    disk_rate = c.disk_amount / c.disk_hours if c.disk_hours else 0.0
    items = [
        ("gpu", f"{c.gpu_hours:.3f} hours at ${gpu_rate:.3f}/hour", c.gpu_amount),
        ("disk", f"{c.disk_hours:.3f} hours at ${disk_rate:.4f}/hour", c.disk_amount),
        ("bwd", f"{c.bwd_gb:.3f} GB downloaded", c.bwd_amount),
        ("bwu", f"{c.bwu_gb:.3f} GB uploaded", c.bwu_amount),
    ]
    if c.kind != "instance":  # a volume is billed for its disk only
        items = items[1:2]
    metadata = {k: v for k, v in (("template_id", c.template_id), ("label", c.label))
                if v is not None}
    return {
        "start": start, "end": end, "type": c.kind, "source": f"{c.kind}-{c.instance_id}",
        "description": f"{c.kind.capitalize()} {c.instance_id} Charges - {days} days",
        "amount": round(c.amount, 3), "metadata": metadata,
        "items": [{"start": start, "end": end, "type": kind, "source": None,
                   "description": text, "amount": round(amount, 3), "metadata": {},
                   "items": []} for kind, text, amount in items],
    }


def _route(path: str) -> tuple[str | None, re.Match[str] | None]:
    for name, pattern in _ROUTES:
        match = pattern.match(path)
        if match:
            return name, match
    return None, None


def _single(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _json_param(query: dict[str, list[str]], name: str, default: Any) -> Any:
    """A JSON-encoded query parameter (the official client's format); bare strings pass."""
    raw = _single(query, name)
    if raw is None or raw == "":
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _limit(query: dict[str, list[str]], default: int) -> int:
    value = _json_param(query, "limit", default)
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise _bad_request("limit must be an integer.") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _order_by(spec: Any) -> list[tuple[str, str]]:
    if isinstance(spec, dict):
        spec = [spec]
    if not isinstance(spec, list):
        raise _bad_request("order_by must be a JSON array of {col, dir}.")
    order: list[tuple[str, str]] = []
    for item in spec:
        col = item.get("col") if isinstance(item, dict) else None
        if not isinstance(col, str) or col not in ORDERABLE_KEYS:
            raise _bad_request(f"Invalid order_by column: {str(col)[:60]}")
        order.append((col, "desc" if item.get("dir") == "desc" else "asc"))
    if all(col != "id" for col, _ in order):
        order.append(("id", "asc"))
    return order


def _select_cols(spec: Any) -> list[str] | None:
    if not isinstance(spec, list) or not all(isinstance(c, str) for c in spec):
        raise _bad_request("select_cols must be a JSON array of column names.")
    return None if "*" in spec else spec


def _project(served: Any, cols: list[str] | None) -> Any:
    if cols is None or not isinstance(served, dict):
        return served
    return {c: served.get(c) for c in cols}


def _compile_filters(spec: Any) -> Callable[[dict[str, Any]], bool]:
    """Validate `select_filters` and return a predicate over clean records."""
    if not isinstance(spec, dict):
        raise _bad_request("select_filters must be a JSON object.")
    checks: list[tuple[str, str, Any]] = []
    for col, cond in spec.items():
        if col in COMPUTED_KEYS:
            raise _bad_request(f"Column {col} is computed and cannot be filtered.")
        if col not in STORED_KEYS or col in _NESTED_KEYS:
            raise _bad_request(f"Invalid filter column: {col[:60]}")
        conds = cond if isinstance(cond, dict) else {"eq": cond}
        for op, value in conds.items():
            if op not in FILTER_OPS:
                raise _bad_request(f"Invalid filter operator: {str(op)[:20]}")
            if op in ("in", "notin") and not isinstance(value, list):
                raise _bad_request(f"Operator {op} needs a JSON array.")
            checks.append((col, op, value))

    def predicate(rec: dict[str, Any]) -> bool:
        return all(_test(rec.get(col), op, value) for col, op, value in checks)

    return predicate


def _test(actual: Any, op: str, value: Any) -> bool:
    if op == "eq":
        return actual == value
    if op == "neq":
        return actual != value
    if op == "in":
        return actual in value
    if op == "notin":
        return actual not in value
    if actual is None or value is None or _rank(actual) != _rank(value):
        return False
    return {"gt": actual > value, "gte": actual >= value, "lt": actual < value,
            "lte": actual <= value}[op]


def _rank(value: Any) -> int:
    """Type class for ordering: numbers (bools included) < strings < anything else."""
    if isinstance(value, int | float):
        return 0
    if isinstance(value, str):
        return 1
    return 2


def _sort_values(rec: dict[str, Any], order: list[tuple[str, str]]) -> dict[str, Any]:
    return {col: rec.get(col) for col, _ in order}


def _compare_values(a: Any, b: Any) -> int:
    """Total order with NULLs last (ascending), like PostgreSQL."""
    if a is None or b is None:
        return (a is None) - (b is None)
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 2:
        a, b = json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True)
    return (a > b) - (a < b)


def _compare_rows(a: Mapping[str, Any], b: Mapping[str, Any],
                  order: list[tuple[str, str]]) -> int:
    for col, direction in order:
        c = _compare_values(a.get(col), b.get(col))
        if c:
            return -c if direction == "desc" else c
    return 0


def _first_after(keyed: tuple[tuple[dict[str, Any], Any], ...], cursor: Mapping[str, Any],
                 order: list[tuple[str, str]]) -> int:
    """Index of the first row sorting after `cursor` (rows are sorted by `order`)."""
    lo, hi = 0, len(keyed)
    while lo < hi:
        mid = (lo + hi) // 2
        if _compare_rows(keyed[mid][0], cursor, order) > 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _encode_cursor(order: list[tuple[str, str]], values: Mapping[str, Any],
                   binding: str | None = None) -> str:
    payload: dict[str, Any] = {"values": {col: values.get(col) for col, _ in order}}
    if binding is not None:
        payload["filters"] = binding
    return base64.b64encode(json.dumps(payload).encode()).decode()


def _decode_cursor(token: str, cols: list[str], binding: str | None = None) -> dict[str, Any]:
    """The keyset position a `next_token` stands for; 400 invalid_token if it is not ours,
    or (when `binding` is given) if it was issued for other filters."""
    try:
        payload = json.loads(base64.b64decode(token.encode(), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        payload = None
    values = payload.get("values") if isinstance(payload, dict) else None
    if not isinstance(values, dict) or any(col not in values for col in cols):
        raise _bad_request("Invalid pagination token", error="invalid_token")
    if binding is not None and payload.get("filters") != binding:
        raise _bad_request("Invalid pagination token: type/date filters must match the "
                           "request that issued it", error="invalid_token")
    return values


def _filters_digest(raw_filters: str | None, latest_first: bool) -> str:
    """What a charges cursor is bound to: the filters as sent and the sort direction."""
    text = f"{raw_filters or ''}|{latest_first}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _charge_filters(filters: Any) -> tuple[float, float, tuple[str, ...] | None]:
    """(gte, lte, types) of a charges request; the documented 400s otherwise."""
    day = filters.get("day") if isinstance(filters, dict) else None
    if not (isinstance(day, dict) and _is_number(day.get("gte"))
            and _is_number(day.get("lte"))):
        raise _ApiError(400, None,
                        "Must provide both 'day' gte and lte filters for instance charges")
    if not all(_is_finite(day[op]) for op in ("gte", "lte")):
        raise _bad_request("'day' gte and lte must be finite epoch seconds.")
    kind = filters.get("type")
    types = kind.get("in") if isinstance(kind, dict) else None
    if kind is not None and not (isinstance(types, list)
                                 and all(isinstance(t, str) for t in types)):
        raise _bad_request("Operator in needs a JSON array.")
    return float(day["gte"]), float(day["lte"]), tuple(types) if types is not None else None


def serve(port: int, seed: int, size: int, *, min_interval: float = 1.0,
          drift_rate: float = 0.0) -> None:
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
