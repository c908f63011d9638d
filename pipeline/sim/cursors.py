"""Keyset cursors (`next_token`): where a listing resumes, and what a cursor is bound to.

A cursor holds the sort values of the last row served, so the next page starts after it
even if rows were added or removed in between, as the real v1 listing behaves. A charges
cursor is also bound to the filters that issued it: sent with other filters it is a 400
`invalid_token`, as the reference describes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pipeline.sim.filters import Order, compare_rows
from pipeline.sim.replies import bad_request


def first_after(keyed: tuple[tuple[dict[str, Any], Any], ...], cursor: Mapping[str, Any],
                order: Order) -> int:
    """Index of the first row sorting after `cursor` (rows are sorted by `order`)."""
    lo, hi = 0, len(keyed)
    while lo < hi:
        mid = (lo + hi) // 2
        if compare_rows(keyed[mid][0], cursor, order) > 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


def encode_cursor(order: Order, values: Mapping[str, Any], binding: str | None = None) -> str:
    """The token for resuming after a row with these sort values."""
    payload: dict[str, Any] = {"values": {col: values.get(col) for col, _ in order}}
    if binding is not None:
        payload["filters"] = binding
    return base64.b64encode(json.dumps(payload).encode()).decode()


def decode_cursor(token: str, cols: list[str], binding: str | None = None) -> dict[str, Any]:
    """The keyset position a `next_token` stands for; 400 invalid_token if it is not ours,
    or (when `binding` is given) if it was issued for other filters."""
    try:
        payload = json.loads(base64.b64decode(token.encode(), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        payload = None
    values = payload.get("values") if isinstance(payload, dict) else None
    if not isinstance(values, dict) or any(col not in values for col in cols):
        raise bad_request("Invalid pagination token", error="invalid_token")
    if binding is not None and payload.get("filters") != binding:
        raise bad_request("Invalid pagination token: type/date filters must match the "
                          "request that issued it", error="invalid_token")
    return values


def filters_digest(raw_filters: str | None, latest_first: bool) -> str:
    """What a charges cursor is bound to: the filters as sent and the sort direction."""
    text = f"{raw_filters or ''}|{latest_first}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
