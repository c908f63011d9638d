"""The query language both listings share: `{field: {op: value}}` filters, ordering, and
the comparison rules behind them.

The instance listing (`select_filters`, `order_by`) and the offer search (the flat query
body, `order`) speak the same operators: `eq`, `neq`, `gt`, `gte`, `lt`, `lte`, `in`,
`notin`. They differ only in which fields they accept: the instance listing refuses an
unknown or computed column with a 400, while the search ignores fields it does not know,
as the real one does with `external`, which the official client always sends. So the
parsing takes the column policy from the caller.

Comparisons follow one total order: numbers (bools included) before strings before
anything else, NULLs last ascending (as PostgreSQL sorts); an ordering comparison between
values of different classes, or with a NULL, is false.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.sim.replies import bad_request

FILTER_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "notin")
Order = list[tuple[str, str]]


@dataclass(frozen=True)
class Condition:
    """One `field op value` test."""

    column: str
    op: str
    value: Any

    def holds(self, record: Mapping[str, Any]) -> bool:
        return test(record.get(self.column), self.op, self.value)


def parse_filters(spec: Any, accept: Callable[[str], bool],
                  what: str = "select_filters") -> list[Condition]:
    """The conditions of a filter object, for the columns `accept` keeps.

    `accept(column)` returns True to keep a column, False to ignore it, or raises the
    caller's 400. A bare value stands for `eq`; an unknown operator, or `in`/`notin`
    without a JSON array, is a 400.
    """
    if not isinstance(spec, dict):
        raise bad_request(f"{what} must be a JSON object.")
    conditions: list[Condition] = []
    for column, cond in spec.items():
        if not accept(column):
            continue
        ops = cond if isinstance(cond, dict) else {"eq": cond}
        for op, value in ops.items():
            if op not in FILTER_OPS:
                raise bad_request(f"Invalid filter operator: {str(op)[:20]}")
            if op in ("in", "notin") and not isinstance(value, list):
                raise bad_request(f"Operator {op} needs a JSON array.")
            conditions.append(Condition(column, op, value))
    return conditions


def matches(record: Mapping[str, Any], conditions: list[Condition]) -> bool:
    """Whether `record` passes every condition."""
    return all(c.holds(record) for c in conditions)


def test(actual: Any, op: str, value: Any) -> bool:
    """`actual op value` under the comparison rules above."""
    if op == "eq":
        return actual == value
    if op == "neq":
        return actual != value
    if op == "in":
        return actual in value
    if op == "notin":
        return actual not in value
    if actual is None or value is None or rank(actual) != rank(value):
        return False
    return {"gt": actual > value, "gte": actual >= value, "lt": actual < value,
            "lte": actual <= value}[op]


def rank(value: Any) -> int:
    """Type class for ordering: numbers (bools included) < strings < anything else."""
    if isinstance(value, int | float):
        return 0
    if isinstance(value, str):
        return 1
    return 2


# ---- ordering ------------------------------------------------------------------------------

def parse_order_by(spec: Any, orderable: Collection[str]) -> Order:
    """The instance listing's `order_by` (`[{"col": c, "dir": "asc"|"desc"}]`), `id` last."""
    if isinstance(spec, dict):
        spec = [spec]
    if not isinstance(spec, list):
        raise bad_request("order_by must be a JSON array of {col, dir}.")
    order: Order = []
    for item in spec:
        col = item.get("col") if isinstance(item, dict) else None
        if not isinstance(col, str) or col not in orderable:
            raise bad_request(f"Invalid order_by column: {str(col)[:60]}")
        order.append((col, "desc" if item.get("dir") == "desc" else "asc"))
    return with_tiebreak(order, "id")


def parse_search_order(spec: Any, orderable: Collection[str], tiebreak: str) -> Order:
    """The search's `order` (`[["dph_total", "asc"], ...]`, or one pair); fields it does not
    know are ignored, like its filters; `tiebreak` ascending last, so equal rows keep one
    order from request to request."""
    if isinstance(spec, list) and len(spec) == 2 and all(isinstance(s, str) for s in spec):
        spec = [spec]
    if not isinstance(spec, list):
        raise bad_request("order must be a JSON array of [field, direction] pairs.")
    order: Order = []
    for item in spec:
        if not (isinstance(item, list | tuple) and item and isinstance(item[0], str)):
            raise bad_request("order must be a JSON array of [field, direction] pairs.")
        direction = item[1] if len(item) > 1 else "asc"
        if item[0] in orderable:
            order.append((item[0], "desc" if direction == "desc" else "asc"))
    return with_tiebreak(order, tiebreak)


def with_tiebreak(order: Order, column: str) -> Order:
    """`order`, ending with `column` ascending unless it already orders by it."""
    if all(col != column for col, _ in order):
        order = [*order, (column, "asc")]
    return order


def sort_values(record: Mapping[str, Any], order: Order) -> dict[str, Any]:
    """The values of `record` an ordering (and a cursor) needs."""
    return {col: record.get(col) for col, _ in order}


def compare_values(a: Any, b: Any) -> int:
    """Total order with NULLs last (ascending), like PostgreSQL."""
    if a is None or b is None:
        return (a is None) - (b is None)
    ra, rb = rank(a), rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 2:
        a, b = json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True)
    return (a > b) - (a < b)


def compare_rows(a: Mapping[str, Any], b: Mapping[str, Any], order: Order) -> int:
    """-1, 0 or 1 as row `a` sorts before, with or after row `b` under `order`."""
    for col, direction in order:
        c = compare_values(a.get(col), b.get(col))
        if c:
            return -c if direction == "desc" else c
    return 0


def sort_keyed(keyed: list[tuple[dict[str, Any], Any]], order: Order) -> None:
    """Sort (sort values, payload) pairs in place by their sort values."""
    keyed.sort(key=functools.cmp_to_key(lambda a, b: compare_rows(a[0], b[0], order)))


# ---- projection ------------------------------------------------------------------------------

def parse_select_cols(spec: Any) -> list[str] | None:
    """`select_cols` as a list of names, or None for every column (`["*"]`)."""
    if not isinstance(spec, list) or not all(isinstance(c, str) for c in spec):
        raise bad_request("select_cols must be a JSON array of column names.")
    return None if "*" in spec else spec


def project(served: Any, cols: list[str] | None) -> Any:
    """`served` cut to `cols` (a record that is not an object passes as it is)."""
    if cols is None or not isinstance(served, dict):
        return served
    return {c: served.get(c) for c in cols}
