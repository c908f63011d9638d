"""`GET /api/v0/charges/`: billed charges, one row per contract over the window asked.

As the reference describes: pages of a size the server chooses (`charges_page_size`,
fewer than asked), latest first unless asked otherwise, keyset cursors valid only with
the filters that issued them, and the documented 400s for a window without both bounds.
Tests can settle a day late (`adjust`) or break a listing after some pages
(`fail_after`), and read what was asked (`log`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pipeline.sim.cursors import decode_cursor, encode_cursor, filters_digest
from pipeline.sim.defaults import CHARGES_PAGE_DEFAULT, CHARGES_PAGE_MAX
from pipeline.sim.filters import compare_rows, sort_keyed
from pipeline.sim.fleet import Charge, FleetModel, to_epoch
from pipeline.sim.replies import (
    ApiError,
    Reply,
    bad_request,
    is_finite,
    is_number,
    json_param,
    json_reply,
    limit_param,
    single,
)

_CACHE_MAX = 16


@dataclass(frozen=True)
class ChargesRequest:
    """One answered request to /api/v0/charges/, for tests: the window and the page asked."""

    gte: float | None
    lte: float | None
    types: tuple[str, ...] | None
    limit: int | None
    after_token: str | None
    status: int


class ChargesEndpoint:
    """The charges listing with its test hooks (late settlement, a broken listing, a log)."""

    def __init__(self, page_size: int, keep_log: bool) -> None:
        if page_size < 1:
            raise ValueError("charges_page_size must be at least 1")
        self.page_size = page_size
        self.keep_log = keep_log
        self.log: list[ChargesRequest] = []
        self._lock = threading.Lock()
        # Late settlement: (key, contract id, day start epoch, item type) -> $ added.
        self._adjustments: dict[tuple[str, int, int, str], float] = {}
        # Charges pages still answered before every further one fails (None: no fault).
        self._pages_left: int | None = None
        self._fault_status = 503
        self._cache: dict[tuple[int, float, float], list[Charge]] = {}

    def adjust(self, key: str, contract_id: int, day: date, item_type: str,
               delta: float) -> None:
        """Add `delta` $ to one item of one contract on `day` (see the server's
        `adjust_charge`)."""
        slot = (key, int(contract_id), int(to_epoch(datetime(day.year, day.month, day.day,
                                                            tzinfo=UTC))), item_type)
        with self._lock:
            self._adjustments[slot] = self._adjustments.get(slot, 0.0) + delta

    def fail_after(self, pages: int | None, status: int = 503) -> None:
        """Answer `status` to every request after `pages` more good ones (None: heal)."""
        with self._lock:
            self._pages_left = pages
            self._fault_status = status

    def answer(self, fleet: FleetModel, key: str, query: dict[str, list[str]],
               now: datetime) -> Reply:
        """Per-contract charges over the window, keyset-paged, the cursor bound to the filters."""
        token = single(query, "after_token")
        raw_limit = single(query, "limit")
        try:
            gte, lte, types = charge_filters(json_param(query, "select_filters", None))
            reply = self._page(fleet, key, query, now, (gte, lte, types), token)
        except ApiError as err:
            self._log(None, None, None, raw_limit, token, err.reply.status)
            raise
        self._log(gte, lte, types, raw_limit, token, reply.status)
        return reply

    def _page(self, fleet: FleetModel, key: str, query: dict[str, list[str]],
              now: datetime, window: tuple[float, float, tuple[str, ...] | None],
              token: str | None) -> Reply:
        gte, lte, types = window
        with self._lock:
            if self._pages_left is not None:
                if self._pages_left <= 0:
                    return json_reply({"detail": "upstream unavailable"}, self._fault_status)
                self._pages_left -= 1
        limit = min(max(limit_param(query, default=CHARGES_PAGE_DEFAULT), 1), CHARGES_PAGE_MAX,
                    self.page_size)
        latest_first = json_param(query, "latest_first", True) not in (False, "false", 0)
        binding = filters_digest(single(query, "select_filters"), latest_first)
        # lte is inclusive, to the second: the window is [gte, lte + 1), clipped at `now`.
        start, end = gte, min(lte + 1, to_epoch(now))
        charges = self._window_charges(fleet, start, end, types)
        order = [("start", "desc" if latest_first else "asc"),
                 ("id", "desc" if latest_first else "asc")]
        keyed = [({"start": int(c.start), "id": c.instance_id}, c) for c in charges]
        sort_keyed(keyed, order)
        if token:
            cursor = decode_cursor(token, ["start", "id"], binding)
            keyed = [pair for pair in keyed if compare_rows(pair[0], cursor, order) > 0]
        page = keyed[:limit]
        more = len(keyed) > limit
        return json_reply({
            "success": True, "count": len(page), "total": len(charges),
            "next_token": encode_cursor(order, page[-1][0], binding) if more else None,
            "results": [self._adjusted(key, charge_result(c), gte, lte) for _, c in page],
        })

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

    def _log(self, gte: float | None, lte: float | None, types: tuple[str, ...] | None,
             limit: str | None, token: str | None, status: int) -> None:
        if not self.keep_log:
            return
        try:
            asked = int(limit) if limit is not None else None
        except ValueError:
            asked = None
        with self._lock:
            self.log.append(ChargesRequest(gte, lte, types, asked, token, status))

    def _fleet_charges(self, fleet: FleetModel, start: float, end: float) -> list[Charge]:
        key = (id(fleet), start, end)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = fleet.charges(start, end)
            with self._lock:
                if len(self._cache) > _CACHE_MAX:
                    self._cache.clear()
                self._cache[key] = cached
        return cached


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


def charge_filters(filters: Any) -> tuple[float, float, tuple[str, ...] | None]:
    """(gte, lte, types) of a charges request; the documented 400s otherwise."""
    day = filters.get("day") if isinstance(filters, dict) else None
    if not (isinstance(day, dict) and is_number(day.get("gte"))
            and is_number(day.get("lte"))):
        raise ApiError(400, None,
                       "Must provide both 'day' gte and lte filters for instance charges")
    if not all(is_finite(day[op]) for op in ("gte", "lte")):
        raise bad_request("'day' gte and lte must be finite epoch seconds.")
    kind = filters.get("type")
    types = kind.get("in") if isinstance(kind, dict) else None
    if kind is not None and not (isinstance(types, list)
                                 and all(isinstance(t, str) for t in types)):
        raise bad_request("Operator in needs a JSON array.")
    return float(day["gte"]), float(day["lte"]), tuple(types) if types is not None else None
