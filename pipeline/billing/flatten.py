"""A day's bill as typed tables: what can be typed lands, the rest is quarantined.

Billing's own rules (the contract is `pipeline.storage.schema`'s BILLED_* schemas): one
row per contract per item, a residual row of item_type `other` when the items do not add
up to the contract's amount, quantities and unit prices parsed from the descriptions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from pipeline.billing.raw import RawBill
from pipeline.landing.rawzone import dump_json
from pipeline.storage.schema import (
    BILLED_CHARGE_SCHEMA,
    BILLED_DAY_SCHEMA,
    BILLED_QUARANTINE_SCHEMA,
    SCHEMA_VERSION,
)

_SOURCE_RE = re.compile(r"^(?P<kind>[A-Za-z_]+)-(?P<id>\d{1,18})$")
# "96.000 hours at $0.389/hour", "1,024.5 GB at $0.01/GB"
_RATE_RE = re.compile(r"^\s*(?P<q>\d[\d,]*(?:\.\d+)?)\s+(?P<unit>[A-Za-z]+)\s+at\s+"
                      r"\$(?P<price>\d[\d,]*(?:\.\d+)?)\s*/\s*[A-Za-z]+\b")
# "12.5 GB downloaded"
_QUANTITY_RE = re.compile(r"^\s*(?P<q>\d[\d,]*(?:\.\d+)?)\s*(?P<unit>[A-Za-z]+)\b")
RESIDUAL_TYPE = "other"
RESIDUAL_DESCRIPTION = "contract amount not covered by its items"
_EPOCH_MAX = 253402300799  # 9999-12-31T23:59:59Z


@dataclass
class FlatBill:
    """A day's bill as the three Parquet tables of the `charges` family."""

    charges: pa.Table
    quarantine: pa.Table
    log: pa.Table
    contracts: int
    total: float

    @property
    def tables(self) -> dict[str, pa.Table]:
        return {"billed_charges": self.charges, "billed_quarantine": self.quarantine,
                "billed_days": self.log}



def flatten_bill(raw: RawBill) -> FlatBill:
    """The day's bill as typed tables; what cannot be typed goes to quarantine with a reason.

    One row per contract per item; a contract whose items do not add up to its amount
    (to 3 decimals), or that has none, gets one more row of item_type `other` with the
    remainder, so a day's rows always sum to its bill. Never raises on bad input.
    """
    flat = _Flattener(raw.fetch_id, raw.fetched_at)
    for result in raw.results:
        flat.add(result)
    charges = pa.Table.from_pylist(flat.rows, schema=BILLED_CHARGE_SCHEMA)
    quarantine = pa.Table.from_pylist(flat.quarantine, schema=BILLED_QUARANTINE_SCHEMA)
    total = round(flat.total, 3)
    log = pa.Table.from_pylist([{
        "fetch_id": raw.fetch_id, "fetched_at": raw.fetched_at,
        "window_start": datetime.fromtimestamp(raw.window_start, UTC),
        "window_end": datetime.fromtimestamp(raw.window_end, UTC),
        "contracts": flat.contracts, "items": charges.num_rows, "total_amount": total,
        "pages": raw.pages, "quarantined": quarantine.num_rows,
        "schema_version": SCHEMA_VERSION,
    }], schema=BILLED_DAY_SCHEMA)
    return FlatBill(charges, quarantine, log, flat.contracts, total)


class _Flattener:
    """Accumulates the rows of one day; every rejection is a quarantine row with a reason."""

    def __init__(self, fetch_id: str, fetched_at: datetime) -> None:
        self.fetch_id = fetch_id
        self.fetched_at = fetched_at
        self.rows: list[dict[str, Any]] = []
        self.quarantine: list[dict[str, Any]] = []
        self.contracts = 0
        self.total = 0.0

    def reject(self, source: str | None, field_name: str | None, value: Any,
               reason: str) -> None:
        self.quarantine.append({
            "fetch_id": self.fetch_id, "fetched_at": self.fetched_at, "source": source,
            "field": field_name, "original_value": _json_text(value), "reason": reason})

    def add(self, result: Any) -> None:
        if not isinstance(result, dict):
            self.reject(None, None, result, "the result is not a JSON object")
            return
        source = result.get("source") if isinstance(result.get("source"), str) else None
        kind = result.get("type")
        if not isinstance(kind, str) or not kind.strip():
            self.reject(source, None, result, "the result has no contract type")
            return
        amount = _money(result.get("amount"))
        if amount is None:
            self.reject(source, None, result, "the contract amount is missing or not a number")
            return
        contract = self._contract(result, kind.strip(), source, amount)
        items = self._items(result, contract, source)
        self.contracts += 1
        self.total += amount
        self.rows += items
        residual = round(amount - sum(r["amount"] for r in items), 3)
        if residual != 0 or not items:
            self.rows.append({**contract, "item_type": RESIDUAL_TYPE,
                              "item_start": contract["contract_start"],
                              "item_end": contract["contract_end"],
                              "item_description": RESIDUAL_DESCRIPTION, "amount": residual,
                              "quantity": None, "quantity_unit": None, "unit_price": None})

    def _contract(self, result: dict, kind: str, source: str | None,
                  amount: float) -> dict[str, Any]:
        """The contract-level columns shared by every row of this contract."""
        if result.get("source") is not None and source is None:
            self.reject(None, "source", result.get("source"), "source is not text")
        contract_id = None
        if source is not None:
            match = _SOURCE_RE.match(source)
            if match:
                contract_id = int(match["id"])
            else:
                self.reject(source, "source", source, "source is not '<type>-<number>'")
        metadata = result.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            self.reject(source, "metadata", metadata, "metadata is not a JSON object")
            metadata = None
        meta = metadata or {}
        return {
            "fetch_id": self.fetch_id, "fetched_at": self.fetched_at, "contract_type": kind,
            "source": source, "contract_id": contract_id,
            "instance_id": contract_id if kind == "instance" else None,
            "label": self._text(meta, "label", source, "metadata.label"),
            "template_id": self._integer(meta, "template_id", source),
            "contract_description": self._text(result, "description", source, "description"),
            "contract_start": self._time(result, "start", source, "start"),
            "contract_end": self._time(result, "end", source, "end"),
            "contract_amount": amount,
            "metadata": _json_text(metadata) if metadata else None,
        }

    def _items(self, result: dict, contract: dict, source: str | None) -> list[dict]:
        items = result.get("items")
        if items is None:
            return []
        if not isinstance(items, list):
            self.reject(source, "items", items, "items is not a JSON array")
            return []
        rows = []
        for index, item in enumerate(items):
            where = f"items[{index}]"
            if not isinstance(item, dict):
                self.reject(source, where, item, "the item is not a JSON object")
                continue
            kind = item.get("type")
            amount = _money(item.get("amount"))
            if not isinstance(kind, str) or not kind.strip():
                self.reject(source, f"{where}.type", item, "the item has no type")
                continue
            if amount is None:
                self.reject(source, f"{where}.amount", item,
                            "the item amount is missing or not a number")
                continue
            description = self._text(item, "description", source, f"{where}.description")
            quantity, unit, price = parse_description(description)
            rows.append({**contract, "item_type": kind.strip(),
                         "item_start": self._time(item, "start", source, f"{where}.start"),
                         "item_end": self._time(item, "end", source, f"{where}.end"),
                         "item_description": description, "amount": amount,
                         "quantity": quantity, "quantity_unit": unit, "unit_price": price})
        return rows

    def _text(self, obj: dict, key: str, source: str | None, where: str) -> str | None:
        value = obj.get(key)
        if value is None or isinstance(value, str):
            return value
        self.reject(source, where, value, f"{key} is not text")
        return None

    def _integer(self, obj: dict, key: str, source: str | None) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        number = _integral(value)
        if number is None:
            self.reject(source, f"metadata.{key}", value, f"{key} is not an integer")
        return number

    def _time(self, obj: dict, key: str, source: str | None, where: str) -> datetime | None:
        value = obj.get(key)
        if value is None:
            return None
        seconds = _money(value)
        if seconds is None or not 0 <= seconds <= _EPOCH_MAX:
            self.reject(source, where, value, f"{key} is not epoch seconds")
            return None
        return datetime.fromtimestamp(seconds, UTC)


def parse_description(text: str | None) -> tuple[float | None, str | None, float | None]:
    """(quantity, unit, unit price) from an item description; NULLs where it does not say.

    "96.000 hours at $0.389/hour" -> (96.0, "hours", 0.389); "12.5 GB downloaded" ->
    (12.5, "GB", None); anything else -> (None, None, None).
    """
    if not text:
        return None, None, None
    match = _RATE_RE.match(text)
    if match:
        return _number(match["q"]), match["unit"], _number(match["price"])
    match = _QUANTITY_RE.match(text)
    if match:
        return _number(match["q"]), match["unit"], None
    return None, None, None


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _money(value: Any) -> float | None:
    """A finite number (a numeric string too: lossless), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _integral(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    number = _money(value)
    if number is None or not number.is_integer() or abs(number) >= 2**63:
        return None
    return int(number)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return dump_json(value).decode()
