"""One market snapshot's responses -> typed offer rows and quarantine rows.

The typing is the instance history's own (`pipeline.landing.flatten`): the same column
kinds, the same lossless coercions ("0.5" -> 0.5, 1 -> true), the same quarantine reasons,
the same pricing objects as `search__*` / `instance__*`; only the contract differs
(`pipeline.market.schema`). Offers are read page after page, and an offer id already seen
for its type is the continuation's overlap (asked again from the last price), dropped and
counted, not quarantined. A record that is not an object or has no integer id, and a page
that is not a search answer, are quarantined whole with a reason; the rest still lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.core.secrets import scrub

# The column machinery of the instance flattener, shared rather than copied.
from pipeline.landing.coerce import INT64_MAX, INT64_MIN, describe, to_json
from pipeline.landing.columns import KINDS, typed_column
from pipeline.landing.flatten import FlattenContext, transpose, untyped_columns
from pipeline.market.raw import RawMarketSnapshot
from pipeline.market.schema import (
    JSON_FIELDS,
    KNOWN_OFFER_KEYS,
    MARKET_OFFER_SCHEMA,
    MARKET_QUARANTINE_SCHEMA,
    OFFER_FIELDS,
    OFFER_TYPES,
)
from pipeline.storage.schema import PRICING_PARENTS, TIMESTAMP

_RECORD_KEYS: tuple[str, ...] = (
    *(n for names in OFFER_FIELDS.values() for n in names), *JSON_FIELDS, *PRICING_PARENTS)


@dataclass(frozen=True)
class MarketFlat:
    """A market snapshot's typed rows, quarantine rows, and what drifted."""

    offers: pa.Table          # MARKET_OFFER_SCHEMA
    quarantine: pa.Table      # MARKET_QUARANTINE_SCHEMA
    new_fields: set[str]
    duplicates_dropped: int   # offers seen again on a later page of their type
    quarantined_records: int
    quarantined_values: int


def flatten_market(snapshot: RawMarketSnapshot) -> MarketFlat:
    """Typed offers (first sighting of each (offer_type, id)) and quarantine rows."""
    at = snapshot.snapshot_at
    # One context "snapshot" per offer type, so each quarantine row knows its type.
    ctx = FlattenContext([(snapshot.snapshot_id, at) for _ in OFFER_TYPES], [], [])
    good, rejected, duplicates = _accept(snapshot, ctx)
    ctx.row_quarantined = [0] * len(good)
    ctx.row_coerced = [0] * len(good)
    offers = _typed(ctx, snapshot, good)
    quarantine = _quarantine(snapshot, ctx, rejected)
    return MarketFlat(offers=offers, quarantine=quarantine,
                      new_fields=set().union(*ctx.new_fields), duplicates_dropped=duplicates,
                      quarantined_records=len(rejected),
                      quarantined_values=sum(ctx.row_quarantined))


def _accept(snapshot: RawMarketSnapshot, ctx: FlattenContext
            ) -> tuple[list[dict], list[tuple[str, int | None, Any, str]], int]:
    """Usable offers in page order (ids, types into `ctx`), rejected records, repeats."""
    good: list[dict] = []
    rejected: list[tuple[str, int | None, Any, str]] = []
    seen: set[tuple[int, int]] = set()
    duplicates = 0
    for page in snapshot.pages:
        if page.offer_type not in OFFER_TYPES:
            rejected.append((str(page.offer_type), None, page.response,
                             f"response for unknown offer type {page.offer_type!r}"))
            continue
        offers = page.response.get("offers")
        if not isinstance(offers, list):
            rejected.append((page.offer_type, None, page.response,
                             "search response has no 'offers' list"))
            continue
        index = OFFER_TYPES.index(page.offer_type)
        for record in offers:
            if type(record) is not dict:
                rejected.append((page.offer_type, None, record,
                                 f"record is not an object, got {describe(record)}"))
                continue
            record = scrub(record)  # defensive: the raw writer scrubbed already
            oid = record.get("id")
            if type(oid) is not int or not INT64_MIN <= oid <= INT64_MAX:
                what = "none" if oid is None else describe(oid)
                rejected.append((page.offer_type, None, record, f"expected integer id, got {what}"))
            elif (index, oid) in seen:
                duplicates += 1
            else:
                seen.add((index, oid))
                good.append(record)
                ctx.ids.append(oid)
                ctx.row_snapshot.append(index)
    return good, rejected, duplicates


def _typed(ctx: FlattenContext, snapshot: RawMarketSnapshot, good: list[dict]) -> pa.Table:
    n = len(good)
    columns: dict[str, pa.Array] = {
        "snapshot_id": pa.array([snapshot.snapshot_id] * n, pa.string()),
        "snapshot_at": pa.array([snapshot.snapshot_at] * n, TIMESTAMP),
        "offer_type": pa.array([OFFER_TYPES[i] for i in ctx.row_snapshot], pa.string()),
    }
    values = dict(zip(_RECORD_KEYS, transpose(good, _RECORD_KEYS), strict=True))
    for kind, names in OFFER_FIELDS.items():
        for name in names:
            columns[name] = typed_column(ctx, name, KINDS[kind], values[name])
    columns |= untyped_columns(ctx, good, values, JSON_FIELDS, KNOWN_OFFER_KEYS)
    return pa.Table.from_arrays([columns[f.name] for f in MARKET_OFFER_SCHEMA],
                                schema=MARKET_OFFER_SCHEMA)


def _quarantine(snapshot: RawMarketSnapshot, ctx: FlattenContext,
                rejected: list[tuple[str, int | None, Any, str]]) -> pa.Table:
    """Whole records first (in page order), then values (in column order)."""
    rows = [(t, oid, None, to_json(value), reason) for t, oid, value, reason in rejected]
    rows += [(OFFER_TYPES[r[0]], r[1], r[2], r[3], r[4]) for r in ctx.rows]
    n = len(rows)
    return pa.table({
        "snapshot_id": pa.array([snapshot.snapshot_id] * n, pa.string()),
        "snapshot_at": pa.array([snapshot.snapshot_at] * n, TIMESTAMP),
        "offer_type": pa.array([r[0] for r in rows], pa.string()),
        "offer_id": pa.array([r[1] for r in rows], pa.int64()),
        "field": pa.array([r[2] for r in rows], pa.string()),
        "original_value": pa.array([r[3] for r in rows], pa.string()),
        "reason": pa.array([r[4] for r in rows], pa.string()),
    }, schema=MARKET_QUARANTINE_SCHEMA)
