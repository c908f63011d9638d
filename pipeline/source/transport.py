"""One call of the Vast.ai API (a GET, or the offer search's POST): paced per endpoint,
retried within two budgets, counted.

Why it looks the way it does:
- Vast.ai rate-limits each endpoint per identity as a minimum interval between calls and
  answers 429 without `Retry-After`, so the transport paces itself per endpoint and
  retries 429/502/503/504, connection errors and timeouts with exponential backoff and
  full jitter (`pipeline.core.retry`, the one retry helper), within both an attempt
  budget and a total time budget (`max_retry_seconds` bounds the time spent before the
  last attempt starts; that attempt adds at most its own timeouts). Retries are calls
  too, so they also respect the per-endpoint pacing. A `Retry-After` the server sends is honoured.
- An unparseable 200 body is retried up to `BAD_BODY_RETRIES` times (see `responses`).
- The simulated-time header (a simulator-only extension) is only ever sent to loopback.
- Read timeouts bound each socket read, not a whole response (requests' semantics).

Not thread-safe: one transport per client, one client per thread.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import requests

from pipeline.core.errors import ConfigError
from pipeline.core.retry import Backoff, retry
from pipeline.core.simtime import SIM_TIME_HEADER, format_sim_time
from pipeline.source.auth import BearerAuth
from pipeline.source.responses import (
    BAD_BODY_RETRIES,
    TRANSPORT_ERRORS,
    Transient,
    bad_body,
    exhausted,
    json_of,
    transport_failure,
)

log = logging.getLogger("pipeline.source.client")


@dataclass
class ClientStats:
    """Counters of what the client did, for materialization metadata and tests."""

    requests: int = 0  # HTTP attempts, including failed ones
    retries: int = 0  # attempts after the first one of a call
    pages: int = 0  # list pages received (instances and charges)
    rate_limited: int = 0  # 429 answers
    bytes: int = 0  # response body bytes received
    elapsed: float = 0.0  # seconds spent inside calls, waits included

    def reset(self) -> None:
        """Zero every counter (e.g. at the start of a collection)."""
        for f in fields(self):
            setattr(self, f.name, f.default)


@dataclass(frozen=True)
class Budget:
    """How long and how often one call may be tried, and how retries are spaced."""

    min_interval: float
    timeouts: tuple[float, float]
    max_attempts: int
    max_retry_seconds: float
    backoff_base: float
    backoff_max: float

    @property
    def backoff(self) -> Backoff:
        """Exponential backoff with full jitter, within both budgets."""
        return Backoff(base=self.backoff_base, cap=self.backoff_max, jitter=1.0,
                       attempts=self.max_attempts, total_seconds=self.max_retry_seconds)


@dataclass
class _Tries:
    """What the attempts of one call found: how many, whether a server ever answered, how
    many unparseable bodies (those have a smaller budget of their own)."""

    made: int = 0
    reached_server: bool = False
    bad_bodies: int = 0


class Transport:
    """GETs JSON objects from one base URL with one key, within a `Budget`."""

    def __init__(self, auth: BearerAuth, base_url: str, *, loopback: bool, budget: Budget,
                 user_agent: str, session: requests.Session | None) -> None:
        self.auth = auth
        self.base_url = base_url
        self.loopback = loopback
        self.budget = budget
        self.user_agent = user_agent
        self.stats = ClientStats()
        self._simulated_time: datetime | None = None
        self.owns_session = session is None
        self.session = session if session is not None else self._new_session()
        self._last_call: dict[str, float] = {}
        self._rng = random.Random()

    @property
    def simulated_time(self) -> datetime | None:
        """The simulated moment sent to the simulator, or None for the server's own clock."""
        return self._simulated_time

    @simulated_time.setter
    def simulated_time(self, value: datetime | None) -> None:
        if value is not None and not self.loopback:
            raise ConfigError(
                "A simulated time can only be sent to a simulator on a loopback address "
                "(127.0.0.1, localhost, ::1): unset it or point VAST_URL at the simulator."
            )
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        self._simulated_time = value

    def get_json(self, path: str, params: Mapping[str, object], *, route: str) -> dict:
        """GET a JSON object, retrying transient failures within both budgets."""
        return self._call_json("GET", path, params, None, route)

    def post_json(self, path: str, body: Mapping[str, object], *, route: str) -> dict:
        """POST a JSON body (the offer search) and read a JSON object, paced and retried as
        a GET is: the search changes nothing on the server, so a retry is safe."""
        return self._call_json("POST", path, {}, body, route)

    def _call_json(self, method: str, path: str, params: Mapping[str, object],
                   body: Mapping[str, object] | None, route: str) -> dict:
        started = time.monotonic()
        tries = _Tries()

        def once() -> dict:
            tries.made += 1
            try:
                return self._attempt(method, path, params, body, route, tries.made)
            except Transient as failure:
                tries.reached_server = tries.reached_server or failure.reached_server
                tries.bad_bodies += failure.bad_body
                if tries.bad_bodies > BAD_BODY_RETRIES:
                    raise bad_body(path, failure) from None
                raise

        def wait(failure: Exception, delay: float) -> float:
            # Retry-After when the server sent one; the next attempt also waits out the
            # endpoint's pacing, so the time budget counts both.
            asked = getattr(failure, "retry_after", None)
            return max(delay if asked is None else asked, self._pace_wait(route))

        def on_retry(_retry: int, failure: Exception, delay: float) -> None:
            self.stats.retries += 1
            log.debug("retrying %s %s in %.0f ms after %s", method, path, delay * 1000,
                      getattr(failure, "cause", failure))

        try:
            return retry(once, self.budget.backoff, retry_on=_is_transient, wait=wait,
                         on_retry=on_retry, rng=self._rng)
        except Transient as last:
            raise exhausted(self.base_url, path, tries.made, time.monotonic() - started, last,
                            tries.reached_server) from None
        finally:
            self.stats.elapsed += time.monotonic() - started

    def close(self) -> None:
        """Release connections (only of a session this transport created)."""
        if self.owns_session:
            self.session.close()

    def headers(self) -> dict[str, str]:
        """Per-request headers; the simulated-time header only ever goes to loopback."""
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self._simulated_time is not None and self.loopback:
            headers[SIM_TIME_HEADER] = format_sim_time(self._simulated_time)
        return headers

    def _attempt(self, method: str, path: str, params: Mapping[str, object],
                 body: Mapping[str, object] | None, route: str, attempt: int) -> dict:
        """One paced HTTP request; returns the JSON object or raises Transient / an error."""
        self._pace(route)
        started = time.monotonic()
        self.stats.requests += 1
        try:
            response = self.session.request(
                method, self.base_url + path, params=_encode(params), json=body,
                headers=self.headers(), auth=self.auth, timeout=self.budget.timeouts,
                allow_redirects=False,
            )
        except TRANSPORT_ERRORS as exc:
            failure = transport_failure(exc, self.budget.timeouts)
            log.debug("%s %s failed attempt=%d %.0f ms: %s", method, path, attempt,
                      (time.monotonic() - started) * 1000, failure.cause)
            raise failure from None
        self.stats.bytes += len(response.content)
        log.debug("%s %s status=%d attempt=%d %.0f ms", method, path, response.status_code,
                  attempt, (time.monotonic() - started) * 1000)
        if response.status_code == 429:
            self.stats.rate_limited += 1
        return json_of(response, path, self.auth.redact)

    def _pace_wait(self, route: str) -> float:
        """Seconds until min_interval has passed since the last call to this endpoint."""
        last = self._last_call.get(route)
        if last is None:
            return 0.0
        return max(0.0, last + self.budget.min_interval - time.monotonic())

    def _pace(self, route: str) -> None:
        """Wait until min_interval has passed since the last call to this endpoint."""
        wait = self._pace_wait(route)
        if wait > 0:
            time.sleep(wait)
        self._last_call[route] = time.monotonic()

    def _new_session(self) -> requests.Session:
        """A session; for loopback, ignore proxy and netrc settings from the environment."""
        session = requests.Session()
        session.trust_env = not self.loopback
        return session

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r})"

    def __reduce__(self) -> object:
        raise TypeError("a Transport holds an API key and cannot be pickled")


def _is_transient(failure: Exception) -> bool:
    return isinstance(failure, Transient)


def _encode(params: Mapping[str, object]) -> dict[str, str]:
    """Query values JSON-encoded (strings as is), as the official client sends them."""
    return {
        name: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for name, value in params.items()
    }
