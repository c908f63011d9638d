"""The market contract as the flattener reads it: the storage layer's market schemas
(`pipeline.storage.schema`, the one home of every dataset's columns) grouped by column kind.

One row per (snapshot_id, offer_type, id) in `market_offers`: the same machine appears under
both types, priced differently. Bump `MARKET_SCHEMA_VERSION` there when a column changes
meaning or type, so older days are re-derived from the raw zone instead of being misread.
"""

from __future__ import annotations

from pipeline.storage.schema import (
    KNOWN_OFFER_KEYS,
    MARKET_BOOL_FIELDS,
    MARKET_FLOAT_FIELDS,
    MARKET_INT_FIELDS,
    MARKET_JSON_FIELDS,
    MARKET_LIST_INT_FIELDS,
    MARKET_OFFER_SCHEMA,
    MARKET_QUARANTINE_SCHEMA,
    MARKET_SCHEMA_VERSION,
    MARKET_SNAPSHOT_LOG_SCHEMA,
    MARKET_STRING_FIELDS,
    MARKET_TIMESTAMP_FIELDS,
    OFFER_TYPES,
)

# The offer fields by the flattener's column kind (`pipeline.landing.flatten._KINDS`).
OFFER_FIELDS: dict[str, tuple[str, ...]] = {
    "int": MARKET_INT_FIELDS,
    "float": MARKET_FLOAT_FIELDS,
    "str": MARKET_STRING_FIELDS,
    "bool": MARKET_BOOL_FIELDS,
    "ts": MARKET_TIMESTAMP_FIELDS,
    "ints": MARKET_LIST_INT_FIELDS,
}
JSON_FIELDS = MARKET_JSON_FIELDS

__all__ = [
    "JSON_FIELDS", "KNOWN_OFFER_KEYS", "MARKET_OFFER_SCHEMA", "MARKET_QUARANTINE_SCHEMA",
    "MARKET_SCHEMA_VERSION", "MARKET_SNAPSHOT_LOG_SCHEMA", "OFFER_FIELDS", "OFFER_TYPES",
]
