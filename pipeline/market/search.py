"""The offer search, asked so that nothing is silently missed: both offer types, verified
and unverified machines, cheapest first, continued by price past a cut-off response.

Why continuation by price: the search documents no pagination and no cap, only `limit`.
A response holding as many offers as asked for may have been cut off, so the search asks
again from the last (highest) price of that response with `dph_total: {"gte": price}`,
ordered by `dph_total`, and keeps only offer ids it has not seen for that type, until a
response is not full. A full response that adds no new id (more offers at one price than
the limit) cannot be continued: the search stops and the snapshot is marked incomplete.
Every request carries the same `allocated_storage`, so `dph_total` means the same on every
page, and an explicit `rentable: {"eq": true}` (the real service's default is not
documented). Verified and unverified machines are asked for apart (`verified: {"eq": true}`
then `{"eq": false}`), the form the API documents, since an absent filter may mean
verified only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pipeline.core.errors import BadResponseError
from pipeline.market.schema import OFFER_TYPES
from pipeline.source.paging import record_key

MAX_PAGES_PER_SEARCH = 200  # a continuation that keeps finding ids this long is stopped

# One POST of the search: the JSON body in, the JSON object answered out.
Post = Callable[[dict], dict]


@dataclass(frozen=True)
class SearchPage:
    """One response as it came, with the request that asked for it."""

    offer_type: str
    request: dict
    response: dict

    @property
    def offers(self) -> list:
        offers = self.response.get("offers")
        return offers if isinstance(offers, list) else []


@dataclass
class MarketSearch:
    """Every response of one market snapshot, and whether a search stayed cut off."""

    pages: list[SearchPage] = field(default_factory=list)
    incomplete_reasons: list[str] = field(default_factory=list)

    @property
    def incomplete(self) -> bool:
        return bool(self.incomplete_reasons)


def search_body(offer_type: str, verified: bool, gpu_names: Sequence[str], *, limit: int,
                allocated_storage_gb: float, floor: float | None = None) -> dict:
    """The JSON body of one search request (the same on every page but for the floor)."""
    body: dict[str, object] = {
        "gpu_name": {"in": list(gpu_names)},
        "verified": {"eq": verified},
        "rentable": {"eq": True},
        "type": offer_type,
        "order": [["dph_total", "asc"]],
        "limit": limit,
        "allocated_storage": allocated_storage_gb,
    }
    if floor is not None:
        body["dph_total"] = {"gte": floor}
    return body


def search_market(post: Post, gpu_names: Sequence[str], *, limit: int,
                  allocated_storage_gb: float,
                  progress: Callable[[SearchPage], None] | None = None) -> MarketSearch:
    """Both offer types, verified and unverified, each continued until complete."""
    result = MarketSearch()
    for offer_type in OFFER_TYPES:
        seen: set[object] = set()  # ids of this type so far: de-duplication is per type
        for verified in (True, False):
            _continue_search(post, result, seen, offer_type, verified, gpu_names, limit,
                             allocated_storage_gb, progress)
    return result


def _continue_search(post: Post, result: MarketSearch, seen: set[object], offer_type: str,
                     verified: bool, gpu_names: Sequence[str], limit: int,
                     allocated_storage_gb: float,
                     progress: Callable[[SearchPage], None] | None) -> None:
    """One search, asked again from its last price while its responses come back full."""
    floor: float | None = None
    what = f"{offer_type} {'verified' if verified else 'unverified'} offers"
    for _ in range(MAX_PAGES_PER_SEARCH):
        body = search_body(offer_type, verified, gpu_names, limit=limit,
                           allocated_storage_gb=allocated_storage_gb, floor=floor)
        page = SearchPage(offer_type, body, _checked(post(body)))
        result.pages.append(page)
        if progress is not None:
            progress(page)
        offers = page.offers
        fresh = keep_new(seen, offers)
        if len(offers) < limit:
            return
        if not fresh:
            price = "" if floor is None else f" at ${floor:g}/h"
            result.incomplete_reasons.append(
                f"{what}: {limit} offers{price} came again with no new id")
            return
        floor = highest_price(offers)
        if floor is None:
            result.incomplete_reasons.append(f"{what}: a full response had no dph_total")
            return
    result.incomplete_reasons.append(
        f"{what}: still full after {MAX_PAGES_PER_SEARCH} requests")


def _checked(response: dict) -> dict:
    """A search answer holding an `offers` list; anything else stops the snapshot (nothing
    is written), since asking again would not change it."""
    if not isinstance(response.get("offers"), list):
        raise BadResponseError(
            "Vast.ai's answer on /api/v0/bundles/ has no 'offers' list: the search API may "
            "have changed; check VAST_URL and report it if it persists.")
    return response


def keep_new(seen: set[object], offers: Iterable[object]) -> list:
    """The offers whose id `seen` lacks (added to it); offers without an id are kept, so
    landing can quarantine them."""
    fresh = []
    for offer in offers:
        key = record_key(offer)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        fresh.append(offer)
    return fresh


def highest_price(offers: Iterable[object]) -> float | None:
    """The highest numeric `dph_total` of a response (its last, ordered ascending)."""
    prices = [o.get("dph_total") for o in offers if isinstance(o, dict)]
    numbers = [p for p in prices if isinstance(p, int | float) and not isinstance(p, bool)]
    return float(max(numbers)) if numbers else None
