"""The instance endpoints: the v1 keyset-paged listing, show instance, the current user.

The v1 listing filters and orders on the clean records (the server's typed view) and
sends the served ones, which may carry drift; it refuses unknown and computed filter
columns with a 400, as the real service does. A listing is sorted once per (fleet,
moment, filters, order) and shared by its pages.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.sim.cursors import decode_cursor, encode_cursor, first_after
from pipeline.sim.defaults import LISTING_CACHE_MAX, V1_PAGE_MAX, V1_PAGE_NONPOSITIVE
from pipeline.sim.filters import (
    Condition,
    Order,
    matches,
    parse_filters,
    parse_order_by,
    parse_select_cols,
    project,
    sort_keyed,
    sort_values,
)
from pipeline.sim.fleet import COMPUTED_KEYS, RECORD_KEYS, FleetModel, to_epoch
from pipeline.sim.replies import (
    ApiError,
    Reply,
    bad_request,
    json_param,
    json_reply,
    limit_param,
    single,
)

_NESTED_KEYS = frozenset({"search", "instance", "extra_env", "ports", "image_args",
                          "volume_info"})
STORED_KEYS = frozenset(RECORD_KEYS) - COMPUTED_KEYS
ORDERABLE_KEYS = frozenset(RECORD_KEYS) - _NESTED_KEYS


@dataclass(frozen=True)
class Listing:
    """One filtered, sorted listing: ((sort values, served record), ...) plus envelope counts."""

    keyed: tuple[tuple[dict[str, Any], Any], ...]
    total: int
    label_counts: dict[str, int]


def _filterable(column: str) -> bool:
    """The v1 listing's column policy: stored, flat columns only (400 otherwise)."""
    if column in COMPUTED_KEYS:
        raise bad_request(f"Column {column} is computed and cannot be filtered.")
    if column not in STORED_KEYS or column in _NESTED_KEYS:
        raise bad_request(f"Invalid filter column: {column[:60]}")
    return True


class InstanceListings:
    """`GET /api/v1/instances/`, with the cache of sorted listings its pages share."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], Listing] = {}

    def page(self, fleet: FleetModel, query: dict[str, list[str]], now: datetime) -> Reply:
        """One page of the listing, from `after_token` when given."""
        limit = limit_param(query, default=V1_PAGE_MAX)
        limit = V1_PAGE_NONPOSITIVE if limit <= 0 else min(limit, V1_PAGE_MAX)
        conditions = parse_filters(json_param(query, "select_filters", {}), _filterable)
        order = parse_order_by(json_param(query, "order_by", [{"col": "id", "dir": "asc"}]),
                               ORDERABLE_KEYS)
        cols = parse_select_cols(json_param(query, "select_cols", ["*"]))
        listing = self.sorted_listing(fleet, single(query, "select_filters"), conditions,
                                      order, now)
        keyed = listing.keyed
        start = 0
        token = single(query, "after_token")
        if token:
            cursor = decode_cursor(token, [col for col, _ in order])
            start = first_after(keyed, cursor, order)
        page = keyed[start:start + limit]
        next_token = encode_cursor(order, page[-1][0]) if len(keyed) - start > limit else None
        return json_reply({
            "success": True, "instances_found": len(page), "total_instances": listing.total,
            "label_counts": listing.label_counts, "next_token": next_token,
            "instances": [project(served, cols) for _, served in page],
        })

    def sorted_listing(self, fleet: FleetModel, raw_filters: str | None,
                       conditions: list[Condition], order: Order, now: datetime) -> Listing:
        """The filtered, sorted fleet at `now`, shared by every page of one listing.

        Building it costs a pass over the whole fleet plus a sort, so it is cached per
        (fleet, moment, filters, order); entries are never mutated once stored, which lets
        concurrent handler threads share them.
        """
        key = (id(fleet), to_epoch(now), raw_filters, tuple(order))
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        rows = [(clean, served) for _, clean, served in fleet.entries_at(now)
                if matches(clean, conditions)]
        label_counts: dict[str, int] = {}
        for clean, _ in rows:
            label = clean.get("label") or ""
            label_counts[label] = label_counts.get(label, 0) + 1
        keyed = [(sort_values(clean, order), served) for clean, served in rows]
        sort_keyed(keyed, order)
        listing = Listing(tuple(keyed), len(rows), label_counts)
        with self._lock:
            if len(self._cache) >= LISTING_CACHE_MAX:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = listing
        return listing


def show_instance(fleet: FleetModel, raw_id: str, now: datetime) -> Reply:
    """`GET /api/v0/instances/<id>/`: `{"instances": record}` (null when it does not exist)."""
    if not raw_id.isdigit():
        raise ApiError(400, "invalid_args", f"Instance id {raw_id[:40]!r} is not a number.")
    return json_reply({"instances": fleet.record(int(raw_id), now)})


def user_blob(fleet: FleetModel) -> dict[str, Any]:
    """`/api/v0/users/current`: the official CLI asks it to tell a client from a host."""
    return {"id": 100_000 + fleet.seed, "username": f"sim-user-{fleet.seed}",
            "email": f"sim-user-{fleet.seed}@example.invalid", "fullname": "Simulated User",
            "credit": fleet.credit_balance, "balance": 0.0, "has_billing": True,
            "host_agreement_accepted": False, "can_pay": True, "user": True}
