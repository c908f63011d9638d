"""Turn one snapshot's API records into a typed Arrow table that follows the schema contract.

Columns are built whole by `pipeline.landing.columns` (one Arrow call when the values fit
the contract), drifted values converted without loss by `pipeline.landing.coerce`, and
everything else goes to the quarantine table as NULL + original JSON + reason.

Whole records are quarantined (and the rest of the snapshot still lands) when they are
not JSON objects, when `id` is not an integer, or when `id` repeats within the snapshot.
Keys the contract does not know go, sorted, to the `extra_fields` JSON column and are
reported in `new_fields`; nothing is dropped.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

import pyarrow as pa

from pipeline.core.secrets import scrub
from pipeline.landing.coerce import INT64_MAX, INT64_MIN, describe, to_json
from pipeline.landing.columns import KINDS, Kind, typed_column
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

_SPLIT_ON_WHITESPACE = frozenset({"local_ipaddrs"})
_PRICING_KEY_SET = frozenset(PRICING_KEYS)


@dataclass(frozen=True)
class FlattenResult:
    """A snapshot's typed rows, its quarantine rows, and what drifted."""

    table: pa.Table            # SNAPSHOT_SCHEMA, one row per landed record
    quarantine: pa.Table       # QUARANTINE_SCHEMA
    new_fields: set[str]       # unknown keys seen (pricing keys as "search.someKey")
    coerced_values: int        # values converted losslessly from a drifted type
    quarantined_records: int   # whole records rejected
    quarantined_values: int    # single values set to NULL


class FlattenContext:
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
    return FlattenContext([(snapshot_id, snapshot_at)], [], []).quarantine_table()


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


# Columns typed straight from a top-level key (the secrets' defused forms included).
_TYPED_COLUMNS: tuple[tuple[str, Kind], ...] = (
    *((n, KINDS[_kind_of(n)]) for n in INT_FIELDS + FLOAT_FIELDS + STRING_FIELDS + BOOL_FIELDS
      + TIMESTAMP_FIELDS + LIST_INT_FIELDS + LIST_STRING_FIELDS),
    ("has_jupyter_token", KINDS["bool"]),
    ("extra_env_names", KINDS["strs"]),
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
            ctx_rows.append((None, record, f"record is not an object, got {describe(record)}"))
            continue
        if "jupyter_token" in record or "extra_env" in record:
            record = scrub(record)  # defensive: secrets never reach a table
        rid = record.get("id")
        if type(rid) is not int or not INT64_MIN <= rid <= INT64_MAX:
            what = "none" if rid is None else describe(rid)
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
    ctx = FlattenContext([(sid, at) for _, sid, at in snapshots], [], [])
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


def _typed_table(ctx: FlattenContext, good: list[dict]) -> pa.Table:
    """SNAPSHOT_SCHEMA rows of the accepted records of every snapshot in `ctx`."""
    rows = pa.array(ctx.row_snapshot, pa.int64())
    columns: dict[str, pa.Array] = {
        "snapshot_id": pa.array([sid for sid, _ in ctx.snapshots], pa.string()).take(rows),
        "snapshot_at": pa.array([at for _, at in ctx.snapshots], TIMESTAMP).take(rows),
    }
    values = dict(zip(_RECORD_KEYS, transpose(good, _RECORD_KEYS), strict=True))
    for name, kind in _TYPED_COLUMNS:
        columns[name] = typed_column(ctx, name, kind, values[name])
    columns |= untyped_columns(ctx, good, values, JSON_FIELDS, KNOWN_API_KEYS)
    return pa.Table.from_arrays([columns[f.name] for f in SNAPSHOT_SCHEMA], schema=SNAPSHOT_SCHEMA)


def untyped_columns(ctx: FlattenContext, good: list[dict], values: dict[str, list[Any]],
                    json_fields: Iterable[str], known: frozenset[str] | set[str],
                    ) -> dict[str, pa.Array]:
    """The columns after the typed ones, the same in every flattener (instance snapshots,
    market offers): JSON text fields, the pricing objects' float columns, `extra_fields`
    (keys outside `known`) and `quarantined_values`. Called once the typed columns are
    built, as it counts their quarantined values too."""
    columns: dict[str, pa.Array] = {}
    for name in json_fields:
        columns[name] = pa.array([None if v is None else to_json(v) for v in values[name]],
                                 pa.string())
    pricing_extras: dict[int, dict[str, Any]] = {}
    for parent in PRICING_PARENTS:
        objects = pricing_objects(ctx, parent, values[parent], pricing_extras)
        for key, column in zip(PRICING_KEYS, transpose(objects, _PRICING_KEY_LIST), strict=True):
            name = pricing_column(parent, key)
            columns[name] = typed_column(ctx, name, KINDS["float"], column)
    columns["extra_fields"] = _extra_fields(ctx, good, pricing_extras, known)
    columns["quarantined_values"] = pa.array(ctx.row_quarantined, pa.int32())
    return columns


def _result_of(ctx: FlattenContext, table: pa.Table, index: int, rejected: int) -> FlattenResult:
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


def transpose(dicts: list[dict[str, Any]], keys: tuple[str, ...]) -> list[list[Any]]:
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


def pricing_objects(
    ctx: FlattenContext,
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
                ctx.reject_value(row, parent, obj, f"expected object, got {describe(obj)}")
            out.append(empty)
            continue
        out.append(obj)
        if not obj.keys() <= _PRICING_KEY_SET:
            for key in obj.keys() - _PRICING_KEY_SET:
                extras.setdefault(row, {})[f"{parent}.{key}"] = obj[key]
                ctx.new_fields[ctx.row_snapshot[row]].add(f"{parent}.{key}")
    return out


def _extra_fields(
    ctx: FlattenContext, good: list[dict], pricing_extras: dict[int, dict[str, Any]],
    known: frozenset[str] | set[str],
) -> pa.Array:
    """Unknown keys per row as sorted JSON text; NULL for rows without any: drift kept."""
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
