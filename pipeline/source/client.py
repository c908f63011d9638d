"""The polite HTTP client for the Vast.ai API (and for the embedded simulator).

Why it looks the way it does:
- The API key travels only in an `Authorization: Bearer` header set by a private auth object;
  it is never part of a URL, a log line, an error message, a repr or a pickle.
- Vast.ai rate-limits each endpoint per identity as a minimum interval between calls and
  answers 429 without `Retry-After`, so the client paces itself per endpoint and retries
  429/502/503/504, connection errors and timeouts with exponential backoff and full jitter,
  within both an attempt budget and a total time budget (`max_retry_seconds` bounds the
  time spent before the last attempt starts; that attempt adds at most its own timeouts).
  Retries are calls too, so they also respect the per-endpoint pacing.
- The simulated-time header (a simulator-only extension) is only ever sent to a loopback
  host, and plain http is refused for any other host, so the key never crosses a network
  in clear text.
- Every failure a user can see is one of the `pipeline.core.errors` classes, with one sentence
  that says what went wrong and what to do.
- Billed charges are listed one UTC day per request window (`charges_of_day`): the API
  answers one row per contract over the whole window, so only day windows give day figures.
- Pagination is defended against a misbehaving server: ids repeated across pages are dropped
  (and counted), and a cursor that repeats, goes in circles or never ends stops with
  `BadResponseError` instead of looping forever.
- An unparseable 200 body (truncated JSON, an HTML page from a proxy) is retried up to
  `BAD_BODY_RETRIES` times, because truncation is usually a dropped connection; a parseable
  body of the wrong shape is not retried, because asking again will not change it.
- Read timeouts bound each socket read, not a whole response (requests' semantics).

Not thread-safe: use one client per thread.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
import urllib3

from pipeline import __version__
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
from pipeline.core.simtime import SIM_TIME_HEADER, format_sim_time

log = logging.getLogger("pipeline.source.client")

DEFAULT_BASE_URL = "https://console.vast.ai"
LIST_PATH = "/api/v1/instances/"
LEGACY_LIST_PATH = "/api/v0/instances/"
SHOW_PATH = "/api/v0/instances/{id}/"
CHARGES_PATH = "/api/v0/charges/"
INSTANCES_PAGE_LIMIT = 25  # the server's cap for the v1 list
CHARGES_PAGE_LIMIT = 500  # the documented maximum; the server may send fewer rows a page
DAY_LAST_SECOND = 86_399  # a day window's lte: the window holds every second of the day
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
BAD_BODY_RETRIES = 2  # extra tries for an unparseable 200 body before BadResponseError
HARD_PAGE_CAP = 10_000  # no listing ever follows more pages than this
STALL_PAGES = 3  # consecutive pages bringing no new id: the cursor goes in circles
_MAX_SERVER_TEXT = 160  # characters of a server's error message we quote


class _BearerAuth(requests.auth.AuthBase):
    """Holds the API key and puts it in the Authorization header, and nowhere else."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._key}"
        return request

    def redact(self, text: str) -> str:
        """Replace the key wherever a server echoed it back."""
        return text.replace(self._key, "***")

    def __repr__(self) -> str:
        return "<api key hidden>"

    def __reduce__(self) -> object:
        raise TypeError("the API key cannot be pickled")


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


@dataclass
class InstanceListing:
    """Every instance of the account, plus how the listing went."""

    records: list[dict]
    pages: int
    requests: int
    retries: int
    duplicates_dropped: int
    total_reported: int | None


@dataclass
class ChargesListing:
    """Every billed contract of one UTC day (results as sent), plus how the listing went."""

    day: date
    window_start: int  # epoch seconds of the day's midnight (the gte sent)
    window_end: int  # window_start + 86399 (the lte sent)
    results: list
    pages: int
    requests: int
    retries: int
    total_reported: int | None


@dataclass
class _Transient(Exception):
    """One attempt failed in a way worth retrying (internal, never escapes the client)."""

    cause: str
    reached_server: bool
    retry_after: float | None = None
    bad_body: bool = False
    status: int | None = None


@dataclass
class _InstanceWalk:
    """Dedup state of one instance listing: which ids came already, how many repeated."""

    seen: set[object] = field(default_factory=set)
    duplicates: int = 0
    stalled: int = 0
    total_reported: int | None = None

    def keep_new(self, items: list) -> list:
        """Drop records whose id came on an earlier page; pass through records without one.

        Records without a usable id are kept so the flattening step can quarantine them.
        """
        fresh = []
        for item in items:
            key = _dedup_key(item)
            if key is not None and key in self.seen:
                self.duplicates += 1
                continue
            if key is not None:
                self.seen.add(key)
            fresh.append(item)
        return fresh


class VastClient:
    """Reads instances and charges of one Vast.ai account (or of the simulator)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        min_interval: float = 1.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 6,
        max_retry_seconds: float = 60.0,
        backoff_base: float = 0.5,
        backoff_max: float = 15.0,
        simulated_time: datetime | None = None,
        session: requests.Session | None = None,
        user_agent: str = f"vast-pipeline/{__version__}",
    ) -> None:
        self._auth = _BearerAuth(_checked_key(api_key))
        self.base_url, self._loopback = _checked_base_url(base_url)
        _check_positive(connect_timeout=connect_timeout, read_timeout=read_timeout,
                        max_attempts=max_attempts, backoff_max=backoff_max)
        _check_non_negative(min_interval=min_interval, max_retry_seconds=max_retry_seconds,
                            backoff_base=backoff_base)
        self.min_interval = float(min_interval)
        self.timeouts = (float(connect_timeout), float(read_timeout))
        self.max_attempts = int(max_attempts)
        self.max_retry_seconds = float(max_retry_seconds)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.user_agent = user_agent
        self.simulated_time = simulated_time
        self.stats = ClientStats()
        self._owns_session = session is None
        self._session = session if session is not None else self._new_session()
        self._last_call: dict[str, float] = {}
        self._rng = random.Random()

    # -- public API ------------------------------------------------------------------------

    @property
    def simulated_time(self) -> datetime | None:
        """The simulated moment sent to the simulator, or None for the server's own clock."""
        return self._simulated_time

    @simulated_time.setter
    def simulated_time(self, value: datetime | None) -> None:
        if value is not None and not self._loopback:
            raise ConfigError(
                "A simulated time can only be sent to a simulator on a loopback address "
                "(127.0.0.1, localhost, ::1): unset it or point VAST_URL at the simulator."
            )
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        self._simulated_time = value

    def list_instances(self) -> InstanceListing:
        """All instances of the account, one page of 25 after another, each id once."""
        before = replace(self.stats)
        walk = _InstanceWalk()
        records: list[dict] = []
        for page in self._instance_pages(walk):
            records.extend(page)
        return InstanceListing(
            records=records,
            pages=self.stats.pages - before.pages,
            requests=self.stats.requests - before.requests,
            retries=self.stats.retries - before.retries,
            duplicates_dropped=walk.duplicates,
            total_reported=walk.total_reported,
        )

    def iter_instance_pages(self) -> Iterator[list[dict]]:
        """The listing page by page (ids already seen dropped), for streaming callers."""
        return self._instance_pages(_InstanceWalk())

    def show_instance(self, instance_id: int) -> dict | None:
        """One instance by id, or None when the account has no such instance (any more)."""
        if isinstance(instance_id, bool) or not isinstance(instance_id, int) or instance_id <= 0:
            raise ValueError("instance_id must be a positive integer")
        path = SHOW_PATH.format(id=instance_id)
        body = self._get_json(path, {"owner": "me"}, route=SHOW_PATH)
        if "instances" not in body:
            raise _bad_shape(path, "has no 'instances' key")
        record = body["instances"]
        if record is not None and not isinstance(record, dict):
            raise _bad_shape(path, "has an 'instances' value that is not an object")
        return record

    def list_instances_legacy(self) -> list[dict]:
        """The retired v0 list (one request, no pages); most accounts get 410 from it.

        Kept so a caller can tell a retired endpoint from other failures; use
        `list_instances` for real work.
        """
        body = self._get_json(LEGACY_LIST_PATH, {"owner": "me"}, route=LEGACY_LIST_PATH)
        records = body.get("instances")
        if not isinstance(records, list):
            raise _bad_shape(LEGACY_LIST_PATH, "has no 'instances' list")
        return records

    def charges_of_day(self, day: date, types: Sequence[str] | None = None) -> ChargesListing:
        """The bill of one UTC day: one result per contract, every page.

        One request window per day (gte = midnight, lte = midnight + 86399 s): Vast.ai
        answers one row per contract over the whole window, so only a one-day window gives
        that day's figures. The server may send fewer rows than `limit` asks, so the
        listing follows `next_token` until it is null, sending the same filters on every
        page (the cursor is only valid with the filters that issued it).
        """
        if isinstance(day, datetime) or not isinstance(day, date):
            raise ValueError("day must be a datetime.date")
        start = _day_start(day)
        filters: dict[str, object] = {"day": {"gte": start, "lte": start + DAY_LAST_SECOND}}
        if types is not None:
            filters["type"] = {"in": list(types)}
        before = replace(self.stats)
        results: list = []
        total: int | None = None
        for items, body in self._pages(CHARGES_PATH, {"select_filters": filters}, "results",
                                       "total", CHARGES_PAGE_LIMIT):
            total = _count(body.get("total")) if total is None else total
            results.extend(items)
        return ChargesListing(
            day=day, window_start=start, window_end=start + DAY_LAST_SECOND, results=results,
            pages=self.stats.pages - before.pages,
            requests=self.stats.requests - before.requests,
            retries=self.stats.retries - before.retries, total_reported=total)

    def close(self) -> None:
        """Release connections (only of a session this client created)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> VastClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"VastClient(base_url={self.base_url!r}, min_interval={self.min_interval}, "
            f"simulated_time={self.simulated_time!r})"
        )

    def __reduce__(self) -> object:
        raise TypeError("VastClient holds an API key and cannot be pickled")

    # -- pagination ------------------------------------------------------------------------

    def _instance_pages(self, walk: _InstanceWalk) -> Iterator[list[dict]]:
        """v1 pages with ids already seen dropped; stops a cursor that brings nothing new."""
        params = {"order_by": [{"col": "id", "dir": "asc"}]}
        pages = self._pages(LIST_PATH, params, "instances", "total_instances",
                            INSTANCES_PAGE_LIMIT)
        for items, body in pages:
            if walk.total_reported is None:
                walk.total_reported = _count(body.get("total_instances"))
            fresh = walk.keep_new(items)
            walk.stalled = 0 if fresh else walk.stalled + 1
            if walk.stalled >= STALL_PAGES and body.get("next_token"):
                raise BadResponseError(
                    f"Vast.ai sent {STALL_PAGES} pages in a row with no new instance on "
                    f"{LIST_PATH}: stopped the listing so it cannot loop forever; try again later."
                )
            yield fresh

    def _pages(
        self, path: str, params: Mapping[str, object], items_key: str, total_key: str,
        limit: int,
    ) -> Iterator[tuple[list, dict]]:
        """Follow `next_token` until it is null; refuse a repeated token or too many pages."""
        token: str | None = None
        seen_tokens: set[str] = set()
        cap = HARD_PAGE_CAP
        for number in range(1, HARD_PAGE_CAP + 1):
            query = {**params, "limit": limit}
            if token is not None:
                query["after_token"] = token
            body = self._get_json(path, query, route=path)
            items = body.get(items_key)
            if not isinstance(items, list):
                raise _bad_shape(path, f"has no '{items_key}' list")
            self.stats.pages += 1
            if number == 1:  # pages may hold fewer rows than asked: size the cap by this one
                cap = _page_cap(_count(body.get(total_key)), min(limit, max(len(items), 1)))
            yield items, body
            token = _next_token(body, path)
            if token is None:
                return
            if token in seen_tokens or number >= cap:
                raise BadResponseError(
                    f"Vast.ai's pagination of {path} did not end after {number} pages "
                    "(a cursor repeated or the pages outran the reported total): stopped the "
                    "listing so it cannot loop forever; try again later."
                )
            seen_tokens.add(token)

    # -- one call, with retries ---------------------------------------------------------------

    def _get_json(self, path: str, params: Mapping[str, object], *, route: str) -> dict:
        """GET a JSON object, retrying transient failures within both budgets."""
        started = time.monotonic()
        reached_server = False
        bad_bodies = 0
        try:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    return self._attempt(path, params, route, attempt)
                except _Transient as failure:
                    last = failure
                reached_server = reached_server or last.reached_server
                if last.bad_body:
                    bad_bodies += 1
                    if bad_bodies > BAD_BODY_RETRIES:
                        raise _bad_body(path, last)
                # The next attempt also waits out the endpoint's pacing: budget for both.
                delay = max(self._delay(attempt, last.retry_after), self._pace_wait(route))
                spent = time.monotonic() - started
                if attempt == self.max_attempts or spent + delay > self.max_retry_seconds:
                    break
                self.stats.retries += 1
                log.debug("retrying GET %s in %.0f ms after %s", path, delay * 1000, last.cause)
                time.sleep(delay)
            raise self._exhausted(path, attempt, time.monotonic() - started, last,
                                  reached_server)
        finally:
            self.stats.elapsed += time.monotonic() - started

    def _attempt(
        self, path: str, params: Mapping[str, object], route: str, attempt: int,
    ) -> dict:
        """One paced HTTP request; returns the JSON object or raises _Transient / an error."""
        self._pace(route)
        started = time.monotonic()
        self.stats.requests += 1
        try:
            response = self._session.get(
                self.base_url + path, params=_encode(params), headers=self._headers(),
                auth=self._auth, timeout=self.timeouts, allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            failure = _Transient(self._describe(exc), reached_server=_reached_server(exc))
            log.debug("GET %s failed attempt=%d %.0f ms: %s", path, attempt,
                      (time.monotonic() - started) * 1000, failure.cause)
            raise failure from None
        self.stats.bytes += len(response.content)
        log.debug("GET %s status=%d attempt=%d %.0f ms", path, response.status_code, attempt,
                  (time.monotonic() - started) * 1000)
        return self._json_of(response, path)

    def _json_of(self, response: requests.Response, path: str) -> dict:
        """The response's JSON object, or the typed reason it is not usable."""
        status = response.status_code
        if status in RETRYABLE_STATUSES:
            if status == 429:
                self.stats.rate_limited += 1
            raise _Transient(f"HTTP {status}", reached_server=True,
                             retry_after=_retry_after(response), status=status)
        if not 200 <= status < 300:
            raise self._status_error(response, path)
        try:
            # NaN and Infinity are not JSON; kept as their text, flattening quarantines them
            # with the original value instead of a float that no Parquet reader agrees on.
            body = json.loads(response.content, parse_constant=str)
        except ValueError:
            raise _Transient(_body_kind(response), reached_server=True, bad_body=True,
                             status=status) from None
        if not isinstance(body, dict):
            raise _bad_shape(path, "is not a JSON object")
        return body

    def _status_error(self, response: requests.Response, path: str) -> VastApiError:
        """The typed error for a non-retryable, non-2xx answer."""
        status = response.status_code
        code, message = _error_fields(response, self._auth.redact)
        if (status == 404 and code == "auth_error") or status == 401:
            return AuthError(
                f"Vast.ai refused the API key ({status} {code or 'unauthorized'}): "
                "check VAST_API_KEY."
            )
        if status == 403:
            return AuthError(
                f"Vast.ai refused access to {path} (403, missing or insufficient API key): "
                "set VAST_API_KEY to a key allowed to read instances."
            )
        if status == 410:
            return EndpointRetiredError(
                f"Vast.ai has retired {path} ({status} {code or 'gone'}): use a "
                "vast-pipeline version that reads /api/v1/instances/ instead."
            )
        if status == 400 and code == "invalid_token":
            return BadTokenError(
                f"Vast.ai refused the pagination cursor on {path} (400 invalid_token): "
                "run the listing again from the start."
            )
        if 300 <= status < 400:
            return BadResponseError(
                f"Vast.ai answered {path} with a redirect (HTTP {status}): check that "
                "VAST_URL is the API's base URL, e.g. https://console.vast.ai."
            )
        said = "; ".join(part for part in (code, message) if part)
        detail = f" ({said})" if said else ""
        return VastApiError(
            f"Vast.ai answered HTTP {status} on {path}{detail}: check the request "
            "and try again later."
        )

    def _exhausted(
        self, path: str, attempts: int, seconds: float, last: _Transient, reached: bool,
    ) -> RetriesExhaustedError:
        """The error once the retry budget is spent; unreachable if no server ever answered."""
        if not reached:
            return ApiUnreachableError(
                f"Could not connect to {self.base_url} for {path} after {attempts} attempts "
                f"in {seconds:.1f} s (last: {last.cause}): check VAST_URL and the network."
            )
        return RetriesExhaustedError(
            f"Gave up on {path} after {attempts} attempts in {seconds:.1f} s "
            f"(last: {last.cause}): Vast.ai is busy or rate-limiting; try again later."
        )

    # -- small helpers ----------------------------------------------------------------------

    def _pace_wait(self, route: str) -> float:
        """Seconds until min_interval has passed since the last call to this endpoint."""
        last = self._last_call.get(route)
        return 0.0 if last is None else max(0.0, last + self.min_interval - time.monotonic())

    def _pace(self, route: str) -> None:
        """Wait until min_interval has passed since the last call to this endpoint."""
        wait = self._pace_wait(route)
        if wait > 0:
            time.sleep(wait)
        self._last_call[route] = time.monotonic()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After when the server sent one, else exponential backoff with full jitter."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return self._rng.uniform(0.0, ceiling)

    def _headers(self) -> dict[str, str]:
        """Per-request headers; the simulated-time header only ever goes to loopback."""
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self._simulated_time is not None and self._loopback:
            headers[SIM_TIME_HEADER] = format_sim_time(self._simulated_time)
        return headers

    def _describe(self, exc: requests.RequestException) -> str:
        """A short cause for a transport failure (never the URL or headers)."""
        if isinstance(exc, requests.ConnectTimeout):
            return f"connect timeout after {self.timeouts[0]:g} s"
        if isinstance(exc, requests.ReadTimeout):
            return f"read timeout after {self.timeouts[1]:g} s"
        if isinstance(exc, requests.exceptions.ChunkedEncodingError
                      | requests.exceptions.ContentDecodingError):
            return "response cut off mid-body"
        reason = _os_reason(exc)
        return f"connection failed ({reason})" if reason else "connection failed"

    def _new_session(self) -> requests.Session:
        """A session; for loopback, ignore proxy and netrc settings from the environment."""
        session = requests.Session()
        session.trust_env = not self._loopback
        return session


# -- module helpers ---------------------------------------------------------------------------


def is_loopback_host(host: str | None) -> bool:
    """Whether host names this machine: 127.0.0.0/8, ::1 or localhost."""
    if not host:
        return False
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked_key(api_key: object) -> str:
    """The key without surrounding whitespace; refuse what cannot be a header value."""
    if not isinstance(api_key, str) or not api_key.strip():
        raise ConfigError("No Vast.ai API key was given: set VAST_API_KEY.")
    key = api_key.strip()
    if not key.isascii() or any(ch.isspace() or not ch.isprintable() for ch in key):
        raise ConfigError(
            "The Vast.ai API key contains spaces, control or non-ASCII characters: "
            "check VAST_API_KEY for stray quotes or line breaks."
        )
    return key


def _checked_base_url(base_url: object) -> tuple[str, bool]:
    """The base URL without a trailing slash, and whether it points at loopback."""
    parts = urlsplit(base_url) if isinstance(base_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            "VAST_URL is not an http(s) URL with a host: use e.g. https://console.vast.ai."
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(
            "VAST_URL must not carry a user, password, query or fragment: "
            "use e.g. https://console.vast.ai."
        )
    loopback = is_loopback_host(parts.hostname)
    if parts.scheme == "http" and not loopback:
        raise ConfigError(
            "VAST_URL uses plain http for a host that is not this machine: use https so "
            "the API key is never sent in clear text."
        )
    return base_url.rstrip("/"), loopback


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be greater than 0")


def _check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{name} must not be negative")


def _encode(params: Mapping[str, object]) -> dict[str, str]:
    """Query values JSON-encoded (strings as is), as the official client sends them."""
    return {
        name: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for name, value in params.items()
    }


def _day_start(day: date) -> int:
    """Epoch seconds of 00:00 UTC of a day."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _count(value: object) -> int | None:
    """A non-negative integer count from an envelope, or None when absent or odd."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _page_cap(total: int | None, limit: int) -> int:
    """Most pages a listing may take: the reported total's pages plus room for growth."""
    if total is None:
        return HARD_PAGE_CAP
    pages = math.ceil(total / limit)
    return min(HARD_PAGE_CAP, pages + 10 + pages // 10)


def _next_token(body: dict, path: str) -> str | None:
    """The cursor of the next page, or None on the last page (null or empty)."""
    token = body.get("next_token")
    if token is None or token == "":
        return None
    if not isinstance(token, str):
        raise _bad_shape(path, "has a 'next_token' that is not a string")
    return token


def _dedup_key(item: object) -> object | None:
    """The id a record is deduplicated by, or None when it has no usable id."""
    if not isinstance(item, dict):
        return None
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return value


def _retry_after(response: requests.Response) -> float | None:
    """Seconds asked for by a Retry-After header (seconds or HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _body_kind(response: requests.Response) -> str:
    """What an unparseable body looks like, for the error message."""
    content = response.content.lstrip()
    if not content:
        return "an empty body"
    if "html" in response.headers.get("Content-Type", "").lower() or content[:1] == b"<":
        return "an HTML page"
    return "truncated or malformed JSON"


def _error_fields(response: requests.Response, redact: Callable[[str], str]) -> tuple[str, str]:
    """The server's error code and message (msg, else detail), cleaned and shortened."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return "", ""
    code = body.get("error")
    message = body.get("msg") or body.get("detail") or body.get("message")
    return _clean(code, redact), _clean(message, redact)


def _clean(value: object, redact: Callable[[str], str]) -> str:
    """One short printable line of server text, with the API key redacted."""
    if not isinstance(value, str):
        return ""
    text = redact(value)
    text = re.sub(r"\s+", " ", "".join(ch if ch.isprintable() else " " for ch in text)).strip()
    if len(text) > _MAX_SERVER_TEXT:
        text = text[: _MAX_SERVER_TEXT - 1].rstrip() + "…"
    return text


def _reached_server(exc: requests.RequestException) -> bool:
    """Whether a transport failure happened after a connection was made."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return not isinstance(reason, urllib3.exceptions.NewConnectionError)
    return True


def _os_reason(exc: BaseException) -> str:
    """The innermost OS error text (e.g. 'connection refused'), found along the chain."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
    return ""


def _bad_shape(path: str, problem: str) -> BadResponseError:
    """A parseable body of the wrong shape: not retried, asking again will not change it."""
    return BadResponseError(
        f"Vast.ai's answer on {path} {problem}: the API may have changed; "
        "check VAST_URL and report it if it persists."
    )


def _bad_body(path: str, last: _Transient) -> BadResponseError:
    """An unparseable body that stayed unparseable after BAD_BODY_RETRIES more tries."""
    return BadResponseError(
        f"Vast.ai sent {last.cause} on {path} (HTTP {last.status}) "
        f"{BAD_BODY_RETRIES + 1} times in a row: check VAST_URL and try again later."
    )
