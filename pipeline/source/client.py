"""The polite HTTP client for the Vast.ai API (and for the embedded simulator).

`VastClient` is the one class callers use; the mechanisms behind it each have a module:
- `auth`: where the API key may go (one header, a checked base URL, never a log or repr);
- `transport`: one GET, paced per endpoint and retried with backoff and jitter within an
  attempt budget and a total time budget;
- `responses`: what an answer means (JSON, a transient failure, or one typed sentence);
- `paging`: following cursors without trusting them (each id once, and an end).

Billed charges are listed one UTC day per request window (`charges_of_day`): the API
answers one row per contract over the whole window, so only day windows give day figures.

Not thread-safe: use one client per thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import requests

from pipeline import __version__
from pipeline.source.auth import BearerAuth, checked_base_url, checked_key, is_loopback_host
from pipeline.source.paging import InstanceWalk, count, instance_pages, pages
from pipeline.source.responses import BAD_BODY_RETRIES, bad_shape
from pipeline.source.transport import Budget, ClientStats, Transport

__all__ = ["BAD_BODY_RETRIES", "DAY_LAST_SECOND", "ChargesListing", "ClientStats",
           "InstanceListing", "VastClient", "is_loopback_host"]

DEFAULT_BASE_URL = "https://console.vast.ai"
LIST_PATH = "/api/v1/instances/"
LEGACY_LIST_PATH = "/api/v0/instances/"
SHOW_PATH = "/api/v0/instances/{id}/"
CHARGES_PATH = "/api/v0/charges/"
SEARCH_PATH = "/api/v0/bundles/"  # the offer search (POST, a JSON body of filters)
INSTANCES_PAGE_LIMIT = 25  # the server's cap for the v1 list
CHARGES_PAGE_LIMIT = 500  # the documented maximum; the server may send fewer rows a page
DAY_LAST_SECOND = 86_399  # a day window's lte: the window holds every second of the day


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
        auth = BearerAuth(checked_key(api_key))
        base_url, loopback = checked_base_url(base_url)
        _check_positive(connect_timeout=connect_timeout, read_timeout=read_timeout,
                        max_attempts=max_attempts, backoff_max=backoff_max)
        _check_non_negative(min_interval=min_interval, max_retry_seconds=max_retry_seconds,
                            backoff_base=backoff_base)
        budget = Budget(
            min_interval=float(min_interval),
            timeouts=(float(connect_timeout), float(read_timeout)),
            max_attempts=int(max_attempts), max_retry_seconds=float(max_retry_seconds),
            backoff_base=float(backoff_base), backoff_max=float(backoff_max))
        self._transport = Transport(auth, base_url, loopback=loopback, budget=budget,
                                    user_agent=user_agent, session=session)
        self._transport.simulated_time = simulated_time

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def min_interval(self) -> float:
        return self._transport.budget.min_interval

    @property
    def stats(self) -> ClientStats:
        """What this client did so far (requests, retries, pages, bytes, time)."""
        return self._transport.stats

    @property
    def simulated_time(self) -> datetime | None:
        """The simulated moment sent to the simulator, or None for the server's own clock."""
        return self._transport.simulated_time

    @simulated_time.setter
    def simulated_time(self, value: datetime | None) -> None:
        self._transport.simulated_time = value

    def list_instances(self) -> InstanceListing:
        """All instances of the account, one page of 25 after another, each id once."""
        before = replace(self.stats)
        walk = InstanceWalk()
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
        return self._instance_pages(InstanceWalk())

    def show_instance(self, instance_id: int) -> dict | None:
        """One instance by id, or None when the account has no such instance (any more)."""
        if isinstance(instance_id, bool) or not isinstance(instance_id, int) or instance_id <= 0:
            raise ValueError("instance_id must be a positive integer")
        path = SHOW_PATH.format(id=instance_id)
        body = self._transport.get_json(path, {"owner": "me"}, route=SHOW_PATH)
        if "instances" not in body:
            raise bad_shape(path, "has no 'instances' key")
        record = body["instances"]
        if record is not None and not isinstance(record, dict):
            raise bad_shape(path, "has an 'instances' value that is not an object")
        return record

    def list_instances_legacy(self) -> list[dict]:
        """The retired v0 list (one request, no pages); most accounts get 410 from it.

        Kept so a caller can tell a retired endpoint from other failures; use
        `list_instances` for real work.
        """
        body = self._transport.get_json(LEGACY_LIST_PATH, {"owner": "me"},
                                        route=LEGACY_LIST_PATH)
        records = body.get("instances")
        if not isinstance(records, list):
            raise bad_shape(LEGACY_LIST_PATH, "has no 'instances' list")
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
        for items, body in pages(self._transport.get_json, self.stats, CHARGES_PATH,
                                 {"select_filters": filters}, "results", "total",
                                 CHARGES_PAGE_LIMIT):
            total = count(body.get("total")) if total is None else total
            results.extend(items)
        return ChargesListing(
            day=day, window_start=start, window_end=start + DAY_LAST_SECOND, results=results,
            pages=self.stats.pages - before.pages,
            requests=self.stats.requests - before.requests,
            retries=self.stats.retries - before.retries, total_reported=total)

    def search_offers(self, body: Mapping[str, object]) -> dict:
        """One offer search (`POST /api/v0/bundles/` with `body` as the official client
        sends it): the JSON object answered. Vast.ai documents no pages for it; the
        continuation by price is the market's (`pipeline.market.search`)."""
        return self._transport.post_json(SEARCH_PATH, body, route=SEARCH_PATH)

    def close(self) -> None:
        """Release connections (only of a session this client created)."""
        self._transport.close()

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

    def _instance_pages(self, walk: InstanceWalk) -> Iterator[list[dict]]:
        """v1 pages, ordered by id, with ids already seen dropped."""
        params = {"order_by": [{"col": "id", "dir": "asc"}]}
        listed = pages(self._transport.get_json, self.stats, LIST_PATH, params, "instances",
                       "total_instances", INSTANCES_PAGE_LIMIT)
        return instance_pages(listed, walk, LIST_PATH)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be greater than 0")


def _check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{name} must not be negative")


def _day_start(day: date) -> int:
    """Epoch seconds of 00:00 UTC of a day."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
