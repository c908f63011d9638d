"""Turn one snapshot's API records into a typed Arrow table that follows the schema contract.

Speed matters (a rebuild re-flattens the whole raw zone), so columns are built whole:
one list comprehension per column and one `pa.array` call that lets Arrow infer the type.
When the inferred type fits the contract (the common case) that is all. Only a column
whose inferred type does not fit goes value by value through `_coerce`, which converts
what can be converted without loss ("12.4" -> 12.4, 0/1 -> bool, {"8080/tcp": ..} -> [8080])
and sends everything else to the quarantine table as NULL + original JSON + reason.

Whole records are quarantined (and the rest of the snapshot still lands) when they are
not JSON objects, when `id` is not an integer, or when `id` repeats within the snapshot.
Keys the contract does not know go, sorted, to the `extra_fields` JSON column and are
reported in `new_fields`; nothing is dropped.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.secrets import scrub
from pipeline.storage.schema import (
    BOOL_FIELDS,
    FLOAT_FIELDS,
    INT_FIELDS,
    JSON_FIELDS,
    KNOWN_API_KEYS,
    LIST_INT_FIELDS,
    LIST_STRING_FIELDS,
    PRICING_KEYS,
    PRICING_PARENTS,
    QUARANTINE_SCHEMA,
    SNAPSHOT_SCHEMA,
    STRING_FIELDS,
    TIMESTAMP,
    TIMESTAMP_FIELDS,
    pricing_column,
)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_EPOCH_S = 253402300799  # 9999-12-31T23:59:59Z
_SPLIT_ON_WHITESPACE = frozenset({"local_ipaddrs"})
_PRICING_KEY_SET = frozenset(PRICING_KEYS)
_JSON_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


@dataclass(frozen=True)
class FlattenResult:
    """A snapshot's typed rows, its quarantine rows, and what drifted."""

    table: pa.Table            # SNAPSHOT_SCHEMA, one row per landed record
    quarantine: pa.Table       # QUARANTINE_SCHEMA
    new_fields: set[str]       # unknown keys seen (pricing keys as "search.someKey")
    coerced_values: int        # values converted losslessly from a drifted type
    quarantined_records: int   # whole records rejected
    quarantined_values: int    # single values set to NULL


class _Context:
    """Mutable state of one flatten call: quarantine rows and per-row counters.

    One call may flatten several snapshots (`flatten_many`): rows are numbered across
    all of them and `row_snapshot` says whose each is; every counter is kept per row or
    per snapshot so the results can be split again.
    """

    def __init__(self, snapshots: list[tuple[str, datetime]], row_snapshot: list[int],
                 ids: list[int]) -> None:
        self.snapshots = snapshots
        self.row_snapshot = row_snapshot
        self.ids = ids
        self.row_quarantined = [0] * len(ids)
        self.row_coerced = [0] * len(ids)
        self.new_fields: list[set[str]] = [set() for _ in snapshots]
        self.rows: list[tuple[int, int | None, str | None, str, str]] = []  # snapshot first

    def reject_value(self, row: int, field: str, value: Any, reason: str) -> None:
        self.row_quarantined[row] += 1
        self.rows.append((self.row_snapshot[row], self.ids[row], field, to_json(value), reason))

    def reject_record(self, snapshot: int, instance_id: int | None, value: Any,
                      reason: str) -> None:
        self.rows.append((snapshot, instance_id, None, to_json(value), reason))

    def quarantine_table(self, snapshot: int = 0) -> pa.Table:
        """The quarantine rows of one snapshot, in the order they were found."""
        rows = [r for r in self.rows if r[0] == snapshot]
        snapshot_id, snapshot_at = self.snapshots[snapshot]
        n = len(rows)
        return pa.table(
            {
                "snapshot_id": pa.array([snapshot_id] * n, pa.string()),
                "snapshot_at": pa.array([snapshot_at] * n, TIMESTAMP),
                "instance_id": pa.array([r[1] for r in rows], pa.int64()),
                "field": pa.array([r[2] for r in rows], pa.string()),
                "original_value": pa.array([r[3] for r in rows], pa.string()),
                "reason": pa.array([r[4] for r in rows], pa.string()),
            },
            schema=QUARANTINE_SCHEMA,
        )


def empty_quarantine(snapshot_id: str, snapshot_at: datetime) -> pa.Table:
    """A snapshot's quarantine table with no rows."""
    return _Context([(snapshot_id, snapshot_at)], [], []).quarantine_table()


def to_json(value: Any) -> str:
    """Compact JSON text with sorted keys (deterministic, so rebuilds are byte-identical)."""
    try:
        return orjson.dumps(value, option=_JSON_OPTS, default=str).decode()
    except TypeError:  # integers beyond 64 bits: the standard library copes
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _describe(value: Any) -> str:
    """`string 'abc'`: the type and a short preview for a quarantine reason."""
    text = repr(value) if isinstance(value, str) else to_json(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{_type_name(value)} {text}"


# -- per-value lossless coercion ------------------------------------------------------------
class _Reject(Exception):
    """A value that cannot be converted without loss."""


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise _Reject
    if isinstance(v, int):
        result = v
    elif isinstance(v, float) and v.is_integer():
        result = int(v)
    elif isinstance(v, str):
        result = _to_int(_parse_number(v))
    else:
        raise _Reject
    if not _INT64_MIN <= result <= _INT64_MAX:
        raise _Reject
    return result


_EXACT_FLOAT_INT = 2**53  # the largest range of integers float64 holds exactly


def _parse_number(text: str) -> int | float:
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        number = float(s)
    except ValueError:
        raise _Reject from None
    if not math.isfinite(number) or abs(number) >= _EXACT_FLOAT_INT:
        raise _Reject  # "9007199254740993.0" already lost its last digit as a float
    return number


def _to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise _Reject
    if isinstance(v, str):
        v = _parse_number(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _Reject
        return v
    if isinstance(v, int):
        if abs(v) > _EXACT_FLOAT_INT:  # float64 would round it: not a lossless coercion
            raise _Reject
        return float(v)
    raise _Reject


def _to_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, int | float) and not isinstance(v, bool):
        return to_json(v)  # 18.04 -> "18.04", as the API would have spelled it
    raise _Reject


_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE or s in _FALSE:
            return s in _TRUE
    raise _Reject


def _to_seconds(v: Any) -> int | float:
    """Epoch seconds as a number (from a number, a numeric string or an ISO 8601 string)."""
    if isinstance(v, str):
        try:
            number: int | float = _parse_number(v)
        except _Reject:
            number = _iso_seconds(v)
    elif isinstance(v, int | float) and not isinstance(v, bool):
        number = v
    else:
        raise _Reject
    if not (math.isfinite(number) and -_MAX_EPOCH_S <= number <= _MAX_EPOCH_S):
        raise _Reject
    return number


def _iso_seconds(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _Reject from None
    if moment.tzinfo is None:
        raise _Reject  # a naive time is ambiguous: not lossless
    return moment.timestamp()


def _to_int_list(v: Any) -> list[int]:
    if isinstance(v, dict):  # v1 ports: {"8080/tcp": [...bindings]} -> container ports
        return [_to_int(str(k).split("/", 1)[0]) for k in v]
    if isinstance(v, list):
        return [_to_int(x) for x in v]
    return [_to_int(v)]


def _to_str_list(split: bool) -> Callable[[Any], list[str]]:
    def convert(v: Any) -> list[str]:
        if isinstance(v, list):
            return [_to_str(x) for x in v]
        if isinstance(v, str):
            return v.split() if split else ([v] if v else [])
        raise _Reject
    return convert


# Whole-column conversions of the drift every snapshot carries (one comprehension instead
# of a function call per value). Each returns None when a value might need quarantine.
_NONE = type(None)


def _bulk_bool(values: list[Any], types: set[type]) -> list[Any] | None:
    """0/1 integers as booleans (flags such as `has_avx` arrive as numbers)."""
    if not types <= {bool, int, _NONE} or not set(values) <= {0, 1, None}:
        return None
    return [None if v is None else v == 1 for v in values]


def _bulk_str(values: list[Any], types: set[type]) -> list[Any] | None:
    """Numbers where text is expected (`os_version` 18.04 -> "18.04")."""
    if not types <= {str, int, float, _NONE}:
        return None
    return [v if v is None or type(v) is str else to_json(v) for v in values]


def _bulk_split(values: list[Any], types: set[type]) -> list[Any] | None:
    """`local_ipaddrs`: "10.0.0.2 172.17.0.1 \\n" -> ["10.0.0.2", "172.17.0.1"]."""
    if not types <= {str, list, _NONE}:
        return None
    return [v.split() if type(v) is str else v for v in values]


# -- column kinds ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Kind:
    """How one contract type is checked fast and coerced slowly.

    Arrow's typed conversion refuses wrong types for strings and booleans, so those are
    built directly. Integers and lists use Arrow's inference, and the inferred type must
    be one of `accepts` (a typed conversion would truncate 1.5 to 1). Floats and
    timestamps are checked by Python type first (`check_types`), because Arrow turns a
    boolean into 1.0 silently, whichever way it is asked.
    """

    arrow_type: pa.DataType
    expected: str                                  # for reasons: "expected integer, got ..."
    coerce: Callable[[Any], Any]                   # lossless conversion, raises _Reject
    py_types: frozenset[type]                      # Python types passed to Arrow as they are
    accepts: frozenset[pa.DataType] = frozenset()  # inferred types that fit (ints, lists)
    check_types: bool = False                      # check Python types before Arrow
    normal: frozenset[type] = frozenset()          # documented forms: converted, not drift
    # Converts a whole column at once when its Python types allow (None: not applicable).
    bulk: Callable[[list[Any], set[type]], list[Any] | None] | None = None


_NULL = pa.null()
_LIST_TYPES = frozenset({list, _NONE})
_LIST_STR_OK = frozenset({pa.list_(pa.string()), pa.list_(_NULL), _NULL})
_KINDS: dict[str, _Kind] = {
    "int": _Kind(
        pa.int64(), "integer", _to_int, frozenset({int, _NONE}),
        accepts=frozenset({pa.int64(), _NULL}),
    ),
    "float": _Kind(
        pa.float64(), "number", _to_float, frozenset({float, int, _NONE}), check_types=True
    ),
    "str": _Kind(pa.string(), "string", _to_str, frozenset({str, _NONE}), bulk=_bulk_str),
    "bool": _Kind(pa.bool_(), "boolean", _to_bool, frozenset({bool, _NONE}), bulk=_bulk_bool),
    "ts": _Kind(
        TIMESTAMP, "epoch seconds", _to_seconds, frozenset({float, int, _NONE}), check_types=True
    ),
    "ints": _Kind(
        pa.list_(pa.int64()), "array of integers", _to_int_list, _LIST_TYPES,
        accepts=frozenset({pa.list_(pa.int64()), pa.list_(_NULL), _NULL}),
    ),
    "strs": _Kind(
        pa.list_(pa.string()), "array of strings", _to_str_list(False), _LIST_TYPES,
        accepts=_LIST_STR_OK,
    ),
    "split": _Kind(  # local_ipaddrs: the API sends one space-separated string
        pa.list_(pa.string()), "array of strings", _to_str_list(True), _LIST_TYPES,
        accepts=_LIST_STR_OK, normal=frozenset({str}), bulk=_bulk_split,
    ),
}


def _kind_of(name: str) -> str:
    for kind, names in (
        ("int", INT_FIELDS), ("float", FLOAT_FIELDS), ("str", STRING_FIELDS),
        ("bool", BOOL_FIELDS), ("ts", TIMESTAMP_FIELDS), ("ints", LIST_INT_FIELDS),
    ):
        if name in names:
            return kind
    if name in LIST_STRING_FIELDS:
        return "split" if name in _SPLIT_ON_WHITESPACE else "strs"
    raise KeyError(name)


def _column(ctx: _Context, name: str, kind: _Kind, values: list[Any]) -> pa.Array:
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


def _fix_types(ctx: _Context, name: str, kind: _Kind, values: list[Any]) -> None:
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
        except _Reject:
            values[row] = None
            ctx.reject_value(row, name, value, f"expected {kind.expected}, got {_describe(value)}")
            continue
        if type(value) not in normal:
            ctx.row_coerced[row] += 1


def _fix(ctx: _Context, row: int, name: str, kind: _Kind, value: Any) -> Any:
    """`value` converted losslessly, or None with a quarantine row."""
    if value is None:
        return None
    try:
        converted = kind.coerce(value)
    except _Reject:
        ctx.reject_value(row, name, value, f"expected {kind.expected}, got {_describe(value)}")
        return None
    if _type_name(converted) != _type_name(value) or converted != value:
        ctx.row_coerced[row] += 1
    return converted


def _build(kind: _Kind, values: list[Any]) -> pa.Array | None:
    """The column in one Arrow call, or None when Arrow refuses or would change a value."""
    try:
        if kind.check_types:  # numbers only by now (`_fix_types` ran): see `_numbers`
            numbers = _numbers(values)
            return _timestamps(numbers) if kind.arrow_type == TIMESTAMP else numbers
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


def _timestamps(seconds: pa.Array) -> pa.Array | None:
    """Epoch seconds -> UTC timestamps in Arrow, or None when a value is out of range."""
    if len(seconds) > seconds.null_count and pc.max(pc.abs(seconds)).as_py() > _MAX_EPOCH_S:
        return None
    micros = pc.round(pc.multiply(seconds, 1_000_000.0))
    return micros.cast(pa.int64()).cast(TIMESTAMP)


# Columns typed straight from a top-level key (the secrets' defused forms included).
_TYPED_COLUMNS: tuple[tuple[str, _Kind], ...] = (
    *((n, _KINDS[_kind_of(n)]) for n in INT_FIELDS + FLOAT_FIELDS + STRING_FIELDS + BOOL_FIELDS
      + TIMESTAMP_FIELDS + LIST_INT_FIELDS + LIST_STRING_FIELDS),
    ("has_jupyter_token", _KINDS["bool"]),
    ("extra_env_names", _KINDS["strs"]),
)
# Every top-level key read from a record, in one pass.
_RECORD_KEYS: tuple[str, ...] = (
    *(n for n, _ in _TYPED_COLUMNS), *JSON_FIELDS, *PRICING_PARENTS,
)
_PRICING_KEY_LIST: tuple[str, ...] = tuple(PRICING_KEYS)


# -- records ---------------------------------------------------------------------------------
def _accept_records(records: Iterable[object], ctx_rows: list) -> tuple[list[dict], list[int]]:
    """Split records into usable objects (scrubbed) and whole-record quarantine rows."""
    good: list[dict] = []
    ids: list[int] = []
    seen: set[int] = set()
    for record in records:
        if type(record) is not dict:
            ctx_rows.append((None, record, f"record is not an object, got {_describe(record)}"))
            continue
        if "jupyter_token" in record or "extra_env" in record:
            record = scrub(record)  # defensive: secrets never reach a table
        rid = record.get("id")
        if type(rid) is not int or not _INT64_MIN <= rid <= _INT64_MAX:
            what = "none" if rid is None else _describe(rid)
            ctx_rows.append((None, record, f"expected integer id, got {what}"))
        elif rid in seen:
            ctx_rows.append((rid, record, f"duplicate id {rid} in this snapshot"))
        else:
            seen.add(rid)
            good.append(record)
            ids.append(rid)
    return good, ids


def flatten(records: Iterable[object], snapshot_id: str, snapshot_at: datetime) -> FlattenResult:
    """Typed rows (SNAPSHOT_SCHEMA) and quarantine rows for one snapshot's records.

    This is the value-by-value path: the history first hands raw files to the columnar
    fast path (`pipeline.landing.fastflatten`), which calls `flatten_many` for the records it sets
    aside and leaves a snapshot to this whole when it cannot reproduce it exactly.
    """
    return flatten_many([(records, snapshot_id, snapshot_at)])[0]


def flatten_many(
    snapshots: Sequence[tuple[Iterable[object], str, datetime]],
) -> list[FlattenResult]:
    """`flatten` of each (records, snapshot_id, snapshot_at), in one pass over all of them.

    Why: a column is built in one Arrow call whatever its length, so a few records from
    each of a hundred snapshots cost one pass instead of a hundred. Every decision is
    made value by value or within a snapshot (repeated ids), so each result is exactly
    what `flatten` gives that snapshot alone.
    """
    ctx = _Context([(sid, at) for _, sid, at in snapshots], [], [])
    good: list[dict] = []
    rejected_per: list[int] = []
    for index, (records, _, _) in enumerate(snapshots):
        rejected: list[tuple[int | None, Any, str]] = []
        accepted, ids = _accept_records(records, rejected)
        for instance_id, value, reason in rejected:
            ctx.reject_record(index, instance_id, value, reason)
        rejected_per.append(len(rejected))
        good += accepted
        ctx.ids += ids
        ctx.row_snapshot += [index] * len(ids)
    ctx.row_quarantined = [0] * len(good)
    ctx.row_coerced = [0] * len(good)
    table = _typed_table(ctx, good)
    return [_result_of(ctx, table, index, rejected_per[index])
            for index in range(len(snapshots))]


def _typed_table(ctx: _Context, good: list[dict]) -> pa.Table:
    """SNAPSHOT_SCHEMA rows of the accepted records of every snapshot in `ctx`."""
    rows = pa.array(ctx.row_snapshot, pa.int64())
    columns: dict[str, pa.Array] = {
        "snapshot_id": pa.array([sid for sid, _ in ctx.snapshots], pa.string()).take(rows),
        "snapshot_at": pa.array([at for _, at in ctx.snapshots], TIMESTAMP).take(rows),
    }
    values = dict(zip(_RECORD_KEYS, _transpose(good, _RECORD_KEYS), strict=True))
    for name, kind in _TYPED_COLUMNS:
        columns[name] = _column(ctx, name, kind, values[name])
    for name in JSON_FIELDS:
        columns[name] = pa.array([None if v is None else to_json(v) for v in values[name]],
                                 pa.string())
    pricing_extras: dict[int, dict[str, Any]] = {}
    for parent in PRICING_PARENTS:
        objects = _pricing_objects(ctx, parent, values[parent], pricing_extras)
        for key, column in zip(PRICING_KEYS, _transpose(objects, _PRICING_KEY_LIST), strict=True):
            name = pricing_column(parent, key)
            columns[name] = _column(ctx, name, _KINDS["float"], column)
    columns["extra_fields"] = _extra_fields(ctx, good, pricing_extras)
    columns["quarantined_values"] = pa.array(ctx.row_quarantined, pa.int32())
    return pa.Table.from_arrays([columns[f.name] for f in SNAPSHOT_SCHEMA], schema=SNAPSHOT_SCHEMA)


def _result_of(ctx: _Context, table: pa.Table, index: int, rejected: int) -> FlattenResult:
    """One snapshot's share of a `flatten_many` pass (its rows are contiguous)."""
    if len(ctx.snapshots) == 1:
        rows = range(len(ctx.ids))
        part = table
    else:
        first = bisect_left(ctx.row_snapshot, index)
        rows = range(first, bisect_right(ctx.row_snapshot, index))
        part = table.slice(first, len(rows))
    return FlattenResult(
        table=part,
        quarantine=ctx.quarantine_table(index),
        new_fields=ctx.new_fields[index],
        coerced_values=sum(ctx.row_coerced[r] for r in rows),
        quarantined_records=rejected,
        quarantined_values=sum(ctx.row_quarantined[r] for r in rows),
    )


def _transpose(dicts: list[dict[str, Any]], keys: tuple[str, ...]) -> list[list[Any]]:
    """Columns of `keys` from `dicts` (missing keys -> None), built at C speed.

    One `itemgetter` call per record plus `zip(*rows)` is several times faster than one
    `dict.get` comprehension per column; a record missing a key is padded first.
    """
    if not dicts:
        return [[] for _ in keys]
    get = itemgetter(*keys)
    padding = dict.fromkeys(keys)
    rows = []
    for d in dicts:
        try:
            rows.append(get(d))
        except KeyError:
            rows.append(get(padding | d))
    return [list(column) for column in zip(*rows, strict=True)]


def _pricing_objects(
    ctx: _Context,
    parent: str,
    objects: list[Any],
    extras: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    """The pricing dicts of one parent; a non-object is quarantined, unknown keys kept."""
    out: list[dict[str, Any]] = []
    empty: dict[str, Any] = {}
    for row, obj in enumerate(objects):
        if type(obj) is not dict:
            if obj is not None:
                ctx.reject_value(row, parent, obj, f"expected object, got {_describe(obj)}")
            out.append(empty)
            continue
        out.append(obj)
        if not obj.keys() <= _PRICING_KEY_SET:
            for key in obj.keys() - _PRICING_KEY_SET:
                extras.setdefault(row, {})[f"{parent}.{key}"] = obj[key]
                ctx.new_fields[ctx.row_snapshot[row]].add(f"{parent}.{key}")
    return out


def _extra_fields(
    ctx: _Context, good: list[dict], pricing_extras: dict[int, dict[str, Any]]
) -> pa.Array:
    """Unknown keys per row as sorted JSON text; NULL for rows without any."""
    known = KNOWN_API_KEYS
    out: list[str | None] = []
    for row, r in enumerate(good):
        extra = pricing_extras.get(row)
        if extra is None and r.keys() <= known:  # the common case: no set is built
            out.append(None)
            continue
        unknown = r.keys() - known
        merged = dict(extra or {})
        new_fields = ctx.new_fields[ctx.row_snapshot[row]]
        for key in unknown:
            merged[key] = r[key]
            new_fields.add(key)
        out.append(to_json(merged))
    return pa.array(out, pa.string())
