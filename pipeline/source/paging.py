"""Following the API's cursors without trusting them: every page, each id once, and an end.

Why a module of its own: a misbehaving server (or a proxy's cache) must not make a listing
loop forever or count an instance twice, and that defence is the same for every list
endpoint, so it lives apart from the calls that use it:
- `next_token` is followed until it is null, sending the same filters on every page (the
  cursor is only valid with the filters that issued it);
- a token that repeats, or more pages than the reported total can explain (plus room for
  growth; `HARD_PAGE_CAP` at most), stops with `BadResponseError`;
- ids repeated across instance pages are dropped and counted, and `STALL_PAGES` pages in a
  row with no new id stop a cursor that goes in circles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from pipeline.core.errors import BadResponseError
from pipeline.source.responses import bad_shape
from pipeline.source.transport import ClientStats

HARD_PAGE_CAP = 10_000  # no listing ever follows more pages than this
STALL_PAGES = 3  # consecutive pages bringing no new id: the cursor goes in circles

GetJson = Callable[..., dict]  # Transport.get_json(path, params, *, route)


@dataclass
class InstanceWalk:
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
            key = record_key(item)
            if key is not None and key in self.seen:
                self.duplicates += 1
                continue
            if key is not None:
                self.seen.add(key)
            fresh.append(item)
        return fresh


def instance_pages(pages: Iterator[tuple[list, dict]], walk: InstanceWalk,
                   path: str) -> Iterator[list[dict]]:
    """Instance pages with ids already seen dropped; stops a cursor that brings nothing new."""
    for items, body in pages:
        if walk.total_reported is None:
            walk.total_reported = count(body.get("total_instances"))
        fresh = walk.keep_new(items)
        walk.stalled = 0 if fresh else walk.stalled + 1
        if walk.stalled >= STALL_PAGES and body.get("next_token"):
            raise BadResponseError(
                f"Vast.ai sent {STALL_PAGES} pages in a row with no new instance on "
                f"{path}: stopped the listing so it cannot loop forever; try again later."
            )
        yield fresh


def pages(get_json: GetJson, stats: ClientStats, path: str, params: Mapping[str, object],
          items_key: str, total_key: str, limit: int) -> Iterator[tuple[list, dict]]:
    """Follow `next_token` until it is null; refuse a repeated token or too many pages."""
    token: str | None = None
    seen_tokens: set[str] = set()
    cap = HARD_PAGE_CAP
    for number in range(1, HARD_PAGE_CAP + 1):
        query = {**params, "limit": limit}
        if token is not None:
            query["after_token"] = token
        body = get_json(path, query, route=path)
        items = body.get(items_key)
        if not isinstance(items, list):
            raise bad_shape(path, f"has no '{items_key}' list")
        stats.pages += 1
        if number == 1:  # pages may hold fewer rows than asked: size the cap by this one
            cap = _page_cap(count(body.get(total_key)), min(limit, max(len(items), 1)))
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


def count(value: object) -> int | None:
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
        raise bad_shape(path, "has a 'next_token' that is not a string")
    return token


def record_key(item: object) -> object | None:
    """The id a record is deduplicated by, or None when it has no usable id (the instance
    pages' and the market's offers alike)."""
    if not isinstance(item, dict):
        return None
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return value
