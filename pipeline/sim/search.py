"""The offer search: `POST /api/v0/bundles/` (the query as the JSON body) and the legacy
`GET /api/v0/bundles/?q=<json>`, answered `{"offers": [...]}` from the `MarketModel`.

The query is one flat object of `{field: {op: value}}` filters (the shared `filters`
language) plus the control keys `type` (`on-demand`, `bid`, `reserved`), `order`
(`[["dph_total", "asc"]]`, default score descending), `limit` and `allocated_storage`
(GB priced into `dph_total`). As the real search does:

- fields it does not know are ignored (`external`, which the official client always
  sends, among them; `rented` too, as the backend reportedly ignores it);
- `verified` is `verification == "verified"`, `dph` is `dph_total`, `geolocation` is
  compared as the two-letter country code (`{"in": ["US", "CA"]}`);
- in string values `_` stands for a space (`RTX_4090`), and numbers may come as strings
  (the official client sends `num_gpus>=2` as `{"gte": "2"}`).

No pagination, no cursor: `limit` only. Equal rows keep one order (`id` last).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.sim.defaults import (
    SEARCH_ALLOCATED_STORAGE,
    SEARCH_LIMIT_DEFAULT,
    SEARCH_LIMIT_MAX,
)
from pipeline.sim.filters import (
    Condition,
    Order,
    matches,
    parse_filters,
    parse_search_order,
    sort_keyed,
    sort_values,
)
from pipeline.sim.market import MarketModel
from pipeline.sim.replies import (
    Reply,
    bad_request,
    int_value,
    is_finite,
    is_number,
    json_param,
    json_reply,
)

CONTROL_KEYS = frozenset({"type", "order", "limit", "allocated_storage", "disable_bundling"})
TYPES = {"on-demand": "on-demand", "ondemand": "on-demand", "bid": "bid",
         "interruptible": "bid", "reserved": "reserved"}
ALIASES = {"dph": "dph_total"}
IGNORED = frozenset({"external", "rented"})
_NESTED = frozenset({"search", "instance", "gpu_ids"})
DEFAULT_ORDER = [["score", "desc"]]


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search: what to price, how to filter and order, how many."""

    offer_type: str
    allocated_storage: float
    conditions: list[Condition]
    order: Order
    limit: int


def body_query(body: bytes) -> Any:
    """The query of a POST: its JSON body (an empty body is an empty query)."""
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("Invalid json body") from None


def legacy_query(query: dict[str, list[str]]) -> Any:
    """The query of a legacy GET: the JSON in `?q=`."""
    q = json_param(query, "q", {})
    if isinstance(q, str):
        raise bad_request("q must be a JSON object.")
    return q


def search(market: MarketModel, spec: Any, now: Any) -> Reply:
    """Answer one search at moment `now`."""
    parsed = parse_search(spec, market)
    offers = market.offers_at(now, parsed.offer_type, parsed.allocated_storage)
    keyed = [(sort_values(offer, parsed.order), offer) for offer in offers
             if matches(filter_view(offer), parsed.conditions)]
    sort_keyed(keyed, parsed.order)
    page = [offer for _, offer in keyed[:parsed.limit]]
    for rn, offer in enumerate(page, 1):
        offer["rn"] = rn
    return json_reply({"offers": page})


def parse_search(spec: Any, market: MarketModel) -> SearchQuery:
    """Validate a search query; the documented 400s for what cannot be read."""
    if not isinstance(spec, dict):
        raise bad_request("The search query must be a JSON object.")
    kind = spec.get("type", "on-demand")
    if kind not in TYPES:
        raise bad_request(f"Invalid type: {str(kind)[:20]}; use on-demand, bid or reserved.")
    storage = spec.get("allocated_storage", SEARCH_ALLOCATED_STORAGE)
    if not (is_number(storage) and is_finite(storage) and storage >= 0):
        raise bad_request("allocated_storage must be a non-negative number of GB.")
    limit = int_value(spec.get("limit", SEARCH_LIMIT_DEFAULT))
    if limit < 1:
        raise bad_request("limit must be a positive integer.")
    fields = _offer_fields(market)
    filters = {ALIASES.get(k, k): _normalised(v) for k, v in spec.items()
               if k not in CONTROL_KEYS}
    conditions = parse_filters(filters, lambda column: column in fields, what="The query")
    order_spec = spec.get("order", DEFAULT_ORDER)
    if isinstance(order_spec, list):
        order_spec = [[ALIASES.get(i[0], i[0]), *i[1:]] if isinstance(i, list) and i
                      and isinstance(i[0], str) else i for i in order_spec]
    order = parse_search_order(order_spec, fields - {"verified"}, "id")
    return SearchQuery(TYPES[kind], float(storage), _numeric(conditions, market), order,
                       min(limit, SEARCH_LIMIT_MAX))


def filter_view(offer: dict[str, Any]) -> dict[str, Any]:
    """What filters compare: the offer, `verified` as a bool, `geolocation` as the country."""
    view = dict(offer)
    view["verified"] = offer["verification"] == "verified"
    view["geolocation"] = offer["geolocation"][-2:]
    return view


def _offer_fields(market: MarketModel) -> frozenset[str]:
    """The flat fields a search may filter and order on."""
    sample = market.sample_offer()
    return frozenset(sample) - _NESTED - IGNORED | {"verified"}


def _normalised(cond: Any) -> Any:
    """`_` as a space in string values (the client's convention for `RTX_4090`)."""
    if isinstance(cond, dict):
        return {op: _normalised(v) for op, v in cond.items()}
    if isinstance(cond, list):
        return [_normalised(v) for v in cond]
    return cond.replace("_", " ") if isinstance(cond, str) else cond


def _numeric(conditions: list[Condition], market: MarketModel) -> list[Condition]:
    """Numbers sent as strings compared as numbers on numeric fields."""
    sample = market.sample_offer()
    out = []
    for c in conditions:
        if is_number(sample.get(c.column)):
            value = [_number(v) for v in c.value] if isinstance(c.value, list) \
                else _number(c.value)
            c = Condition(c.column, c.op, value)
        out.append(c)
    return out


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
