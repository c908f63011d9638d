"""Typed Arrow columns from lists of API values: fast when the values fit, value by
value (through `pipeline.landing.coerce`) when they drift.

Speed matters (a rebuild re-flattens the whole raw zone), so a column is built whole: one
`pa.array` call that lets Arrow infer the type. When the inferred type fits the contract
(the common case) that is all; only a column that does not fit goes value by value, and
each value that cannot be converted losslessly is reported to the caller's context
(`Rejects`) for quarantine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.landing.coerce import (
    MAX_EPOCH_S,
    NONE,
    Reject,
    bulk_bool,
    bulk_split,
    bulk_str,
    describe,
    to_bool,
    to_float,
    to_int,
    to_int_list,
    to_seconds,
    to_str,
    to_str_list,
    type_name,
)
from pipeline.storage.schema import TIMESTAMP


class Rejects(Protocol):
    """What a column builder reports to: a counter of converted values per row, and
    the quarantine of values that could not be converted."""

    row_coerced: list[int]

    def reject_value(self, row: int, field: str, value: Any, reason: str) -> None: ...


# -- column kinds ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """How one contract type is checked fast and coerced slowly.

    Arrow's typed conversion refuses wrong types for strings and booleans, so those are
    built directly. Integers and lists use Arrow's inference, and the inferred type must
    be one of `accepts` (a typed conversion would truncate 1.5 to 1). Floats and
    timestamps are checked by Python type first (`check_types`), because Arrow turns a
    boolean into 1.0 silently, whichever way it is asked.
    """

    arrow_type: pa.DataType
    expected: str                                  # for reasons: "expected integer, got ..."
    coerce: Callable[[Any], Any]                   # lossless conversion, raises Reject
    py_types: frozenset[type]                      # Python types passed to Arrow as they are
    accepts: frozenset[pa.DataType] = frozenset()  # inferred types that fit (ints, lists)
    check_types: bool = False                      # check Python types before Arrow
    normal: frozenset[type] = frozenset()          # documented forms: converted, not drift
    # Converts a whole column at once when its Python types allow (None: not applicable).
    bulk: Callable[[list[Any], set[type]], list[Any] | None] | None = None


_NULL = pa.null()
_LIST_TYPES = frozenset({list, NONE})
_LIST_STR_OK = frozenset({pa.list_(pa.string()), pa.list_(_NULL), _NULL})
KINDS: dict[str, Kind] = {
    "int": Kind(
        pa.int64(), "integer", to_int, frozenset({int, NONE}),
        accepts=frozenset({pa.int64(), _NULL}),
    ),
    "float": Kind(
        pa.float64(), "number", to_float, frozenset({float, int, NONE}), check_types=True
    ),
    "str": Kind(pa.string(), "string", to_str, frozenset({str, NONE}), bulk=bulk_str),
    "bool": Kind(pa.bool_(), "boolean", to_bool, frozenset({bool, NONE}), bulk=bulk_bool),
    "ts": Kind(
        TIMESTAMP, "epoch seconds", to_seconds, frozenset({float, int, NONE}), check_types=True
    ),
    "ints": Kind(
        pa.list_(pa.int64()), "array of integers", to_int_list, _LIST_TYPES,
        accepts=frozenset({pa.list_(pa.int64()), pa.list_(_NULL), _NULL}),
    ),
    "strs": Kind(
        pa.list_(pa.string()), "array of strings", to_str_list(False), _LIST_TYPES,
        accepts=_LIST_STR_OK,
    ),
    "split": Kind(  # local_ipaddrs: the API sends one space-separated string
        pa.list_(pa.string()), "array of strings", to_str_list(True), _LIST_TYPES,
        accepts=_LIST_STR_OK, normal=frozenset({str}), bulk=bulk_split,
    ),
}


def typed_column(ctx: Rejects, name: str, kind: Kind, values: list[Any]) -> pa.Array:
    """One typed column, in one Arrow call when the values already fit the contract.

    Values of an unexpected Python type are coerced first (always checked for kinds where
    Arrow would silently convert, otherwise only after Arrow refused). If Arrow still
    refuses (an int beyond int64, a list with odd items) the column goes value by value.
    """
    if kind.check_types:
        _fix_types(ctx, name, kind, values)
    arr = _build(kind, values)
    if arr is None and not kind.check_types:
        _fix_types(ctx, name, kind, values)
        arr = _build(kind, values)
    if arr is None:
        arr = _build(kind, [_fix(ctx, row, name, kind, v) for row, v in enumerate(values)])
    if arr is None:  # unreachable: every fixed value has the contract's type
        raise AssertionError(f"column {name} could not be built")
    return arr


def _fix_types(ctx: Rejects, name: str, kind: Kind, values: list[Any]) -> None:
    """Coerce, in place, the values whose Python type is not one Arrow takes as is."""
    ok = kind.py_types
    types = set(map(type, values))
    if types <= ok:
        return
    converted = kind.bulk(values, types) if kind.bulk is not None else None
    if converted is not None:  # the column's usual drift, converted in one comprehension
        if not kind.normal:
            counts = ctx.row_coerced
            for row, value in enumerate(values):
                if type(value) not in ok:
                    counts[row] += 1
        values[:] = converted
        return
    coerce, normal = kind.coerce, kind.normal
    for row, value in enumerate(values):
        if type(value) in ok:
            continue
        try:
            values[row] = coerce(value)
        except Reject:
            values[row] = None
            ctx.reject_value(row, name, value, f"expected {kind.expected}, got {describe(value)}")
            continue
        if type(value) not in normal:
            ctx.row_coerced[row] += 1


def _fix(ctx: Rejects, row: int, name: str, kind: Kind, value: Any) -> Any:
    """`value` converted losslessly, or None with a quarantine row."""
    if value is None:
        return None
    try:
        converted = kind.coerce(value)
    except Reject:
        ctx.reject_value(row, name, value, f"expected {kind.expected}, got {describe(value)}")
        return None
    if type_name(converted) != type_name(value) or converted != value:
        ctx.row_coerced[row] += 1
    return converted


def _build(kind: Kind, values: list[Any]) -> pa.Array | None:
    """The column in one Arrow call, or None when Arrow refuses or would change a value."""
    try:
        if kind.check_types:  # numbers only by now (`_fix_types` ran): see `_numbers`
            numbers = _numbers(values)
            return timestamps(numbers) if kind.arrow_type == TIMESTAMP else numbers
        if kind.accepts:  # Arrow infers, the inferred type must fit exactly
            arr = pa.array(values)
            return arr.cast(kind.arrow_type) if arr.type in kind.accepts else None
        return pa.array(values, kind.arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None


def _numbers(values: list[Any]) -> pa.Array:
    """Python ints and floats as float64.

    Arrow's inferring conversion is about ten times faster than asking for float64
    up front; the safe cast afterwards still refuses an integer float64 cannot hold exactly.
    """
    arr = pa.array(values)
    return arr if arr.type == pa.float64() else arr.cast(pa.float64())


def timestamps(seconds: pa.Array) -> pa.Array | None:
    """Epoch seconds -> UTC timestamps in Arrow, or None when a value is out of range."""
    if len(seconds) > seconds.null_count and pc.max(pc.abs(seconds)).as_py() > MAX_EPOCH_S:
        return None
    micros = pc.round(pc.multiply(seconds, 1_000_000.0))
    return micros.cast(pa.int64()).cast(TIMESTAMP)
