"""The columnar fast path of flattening: many snapshots parsed at once by Arrow's JSON reader.

Why: the value-by-value path (`pipeline.landing.flatten`) parses every record into Python objects
and converts ~110 columns of them back into Arrow; for a day of 1,000 instances that is
most of a rebuild's time. Arrow's JSON reader, given the contract's explicit schema, goes
from NDJSON bytes straight to typed columns on all cores (the nested pricing objects arrive
as structs and are flattened to `search__*` / `instance__*` columns here).

How drift is kept exact, record by record: the snapshots of a batch (a day, or what a
landing adds) are joined into one NDJSON buffer and every line that may drift is set
aside *before* Arrow reads the rest:

- a line that does not start with `{` (not an object, blank);
- a line matching a learned pattern (`"cuda_max_good":"` ...). Arrow's reader is strict
  (a string where a number is declared raises "Column(/cuda_max_good) changed from number
  to string"), so each error teaches one pattern, and the read is retried without the
  lines that match it. Patterns are kept for the process: a rebuild learns the drift of
  its first day and sets it aside up front on every later day;
- a line holding a key the contract does not know (Arrow reports it as an extra column,
  and the batch is read again without the lines that spell that key);
- a row Arrow reads differently from `flatten` (integers beyond float64's exact range in
  float columns, epoch seconds beyond year 9999, `has_avx` outside 0/1, integral
  `os_version` numbers, non-empty `volume_info`, a missing id).

The lines set aside go through `flatten` (the value-by-value path), and its rows and
quarantine are added to the snapshot's fast rows: flattening decides value by value, so
the union is what `flatten` gives for the whole snapshot (rows in another order; the day
file sorts them). A snapshot is declined whole (None: the caller runs `flatten`) when
that could differ: an id in both parts or repeated, a line set aside that is not JSON
(the caller reports the broken file). A batch whose error teaches nothing is split in
two until the snapshot behind it is declined alone. The hypothesis test in
`tests/landing/test_fastflatten.py` checks the equivalence on generated clean and drifted
snapshots, down to the Parquet bytes.

The schema read here is the API's own shape, which differs from the contract's in three
documented places (`API_FORMS`): `has_avx` arrives as 0/1, `os_version` as a number and
`local_ipaddrs` as one space-separated string; they are converted exactly as `flatten`
converts them, and counted as coerced values the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from pipeline.landing.coerce import EXACT_FLOAT_INT, MAX_EPOCH_S, to_json
from pipeline.landing.columns import timestamps
from pipeline.landing.flatten import FlattenResult, empty_quarantine, flatten_many
from pipeline.storage.schema import (
    BOOL_FIELDS,
    FLOAT_FIELDS,
    INT_FIELDS,
    LIST_INT_FIELDS,
    LIST_STRING_FIELDS,
    PRICING_KEYS,
    PRICING_PARENTS,
    SNAPSHOT_SCHEMA,
    STRING_FIELDS,
    TIMESTAMP,
    TIMESTAMP_FIELDS,
    pricing_column,
)

# API fields whose usual form on the wire is not the contract's type (see flatten's kinds).
API_FORMS: dict[str, pa.DataType] = {
    "has_avx": pa.int64(),        # 0/1 -> bool, counted as coerced
    "os_version": pa.float64(),   # 22.04 -> "22.04", counted as coerced
    "local_ipaddrs": pa.string(),  # "10.0.0.2 172.17.0.1" -> list, the documented form
}
_PRICING_STRUCT = pa.struct([(key, pa.float64()) for key in PRICING_KEYS])


def _read_schema() -> pa.Schema:
    """The explicit schema Arrow reads with: every key the contract knows, API-typed."""
    fields = [(n, pa.int64()) for n in INT_FIELDS]
    fields += [(n, pa.float64()) for n in FLOAT_FIELDS + TIMESTAMP_FIELDS]
    fields += [(n, pa.string()) for n in STRING_FIELDS]
    fields += [(n, pa.bool_()) for n in BOOL_FIELDS]
    fields += [(n, pa.list_(pa.int64())) for n in LIST_INT_FIELDS]
    fields += [(n, pa.list_(pa.string())) for n in LIST_STRING_FIELDS]
    fields += [("volume_info", pa.list_(pa.null()))]  # only `[]` is taken (kept as "[]")
    fields += [(p, _PRICING_STRUCT) for p in PRICING_PARENTS]
    fields += [("has_jupyter_token", pa.bool_()), ("extra_env_names", pa.list_(pa.string()))]
    return pa.schema([(n, API_FORMS.get(n, t)) for n, t in fields])


READ_SCHEMA = _read_schema()
# Unknown keys become extra columns (their lines are then set aside), so one new field
# does not fail a whole batch; the contract's keys keep their explicit types.
_PARSE = pj.ParseOptions(explicit_schema=READ_SCHEMA, unexpected_field_behavior="infer")
# Big blocks on Arrow's thread pool: measured on a day of 1,000 instances (275 MB of
# NDJSON) on 2 cores, 4 MiB blocks read 2.4x faster than one thread with 256 KiB blocks.
_READ = pj.ReadOptions(use_threads=True, block_size=4 << 20)
_FLOAT_COLUMNS = FLOAT_FIELDS + tuple(
    pricing_column(p, k) for p in PRICING_PARENTS for k in PRICING_KEYS
)
# What a JSON value of each kind (as Arrow's errors name them) starts with.
_KIND_START = {"string": '"', "number": "[-0-9]", "boolean": "[tf]", "null": "n",
               "array": r"\[", "object": r"\{"}
_COLUMN_ERROR = re.compile(r"Column\((/[^)]*)\) changed from \w+ to (\w+)")
# Arrow names no column when an integer column meets 1.0 or 1e3: such lines are set aside.
_INT_WITH_FRACTION = "|".join(
    [f'"(?:{"|".join(map(re.escape, INT_FIELDS))})":-?[0-9]+[.eE]',
     f'"(?:{"|".join(map(re.escape, LIST_INT_FIELDS))})":\\[[^\\]]*[.eE]'])
_MAX_LESSONS = 64  # errors one batch may learn from before it is split
_SAMPLE_LINES = 2000
# Patterns learned from Arrow's errors and from unknown keys, for this process.
_LEARNED: dict[str, None] = {}


@dataclass(frozen=True)
class Body:
    """One snapshot's NDJSON records (the raw file's lines after its header)."""

    snapshot_id: str
    snapshot_at: datetime
    data: bytes


class _Decline(Exception):
    """The batch taught nothing new: split it, or leave a lone snapshot to `flatten`."""


def flatten_bodies(bodies: Sequence[Body]) -> list[FlattenResult | None]:
    """`flatten`'s result for each body, or None where the caller must run `flatten`."""
    if not bodies:
        return []
    try:
        return _Batch(bodies).results()
    except _Decline:
        if len(bodies) == 1:
            return [None]
        middle = len(bodies) // 2
        return flatten_bodies(bodies[:middle]) + flatten_bodies(bodies[middle:])


def forget_learned() -> None:
    """Drop the learned patterns, as a fresh process starts (the tests check that what a
    process has learned never changes a result)."""
    _LEARNED.clear()


# -- one batch ---------------------------------------------------------------------------------
class _Batch:
    """The lines of several snapshots, split into what Arrow reads and what `flatten` reads."""

    def __init__(self, bodies: Sequence[Body]) -> None:
        self.bodies = bodies
        parts = [b.data if not b.data or b.data.endswith(b"\n") else b.data + b"\n"
                 for b in bodies]
        # One mutable buffer: lines set aside are blanked in place (Arrow skips lines of
        # spaces), so Arrow reads it as it is, without copying the rest around them.
        self.data = bytearray().join(parts)
        self.starts = _line_starts(self.data)
        ends = np.cumsum([len(p) for p in parts])
        self.snapshot_of_line = np.searchsorted(ends, self.starts[:-1], side="right")
        self.lines = pa.Array.from_buffers(
            pa.large_binary(), len(self.starts) - 1,
            [None, pa.py_buffer(self.starts), pa.py_buffer(self.data)])
        try:  # orjson refuses invalid UTF-8 that Arrow's reader would take
            self.lines.cast(pa.large_string())
        except pa.ArrowInvalid:
            raise _Decline from None
        self.aside = np.zeros(len(self.starts) - 1, dtype=bool)
        self.original: dict[int, bytes] = {}  # the text of blanked lines
        self._scanned: set[str] = set()
        self._put_aside(~np.asarray(pc.starts_with(self.lines, "{"), dtype=bool))

    def results(self) -> list[FlattenResult | None]:
        table, read_lines = self._read()
        keep = ~self.aside[read_lines] & ~_rows_arrow_reads_otherwise(table)
        self.aside[read_lines[~keep]] = True
        return self._assemble(table.filter(pa.array(keep)), read_lines[keep])

    # -- reading ---------------------------------------------------------------------------
    def _read(self) -> tuple[pa.Table, np.ndarray]:
        """Arrow's table of the lines not set aside, learning from each error it raises."""
        if len(self.aside) > _SAMPLE_LINES:  # learn cheaply on a sample first
            _learn_from_sample(self.bodies, bytes(self.data[:self.starts[_SAMPLE_LINES]]))
        for _ in range(_MAX_LESSONS):
            self._set_aside(list(_LEARNED))
            read_lines = np.flatnonzero(~self.aside)
            try:
                table = pj.read_json(pa.BufferReader(pa.py_buffer(self.data)),
                                     read_options=_READ, parse_options=_PARSE)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                self._learn(str(exc))
                continue
            if table.num_rows != len(read_lines):  # rows and lines would not pair up
                raise _Decline
            unknown = _unknown_key_patterns(table)
            if not unknown:  # no line read holds a key the contract does not know
                return _contract_typed(table), read_lines
            if all(p in self._scanned for p in unknown):
                raise _Decline  # spelled otherwise in the text (escaped): not found
            _LEARNED.update(dict.fromkeys(unknown))  # set aside, then read again
        raise _Decline

    def _learn(self, message: str) -> None:
        lesson = _pattern_for_error(message)
        if lesson is None or lesson in self._scanned:
            raise _Decline  # nothing new to set aside: this batch is split instead
        _LEARNED[lesson] = None

    def _set_aside(self, patterns: list[str]) -> None:
        """Set aside the lines matching patterns not scanned yet (one RE2 pass for all)."""
        fresh = [p for p in patterns if p not in self._scanned]
        if not fresh:
            return
        self._scanned.update(fresh)
        regex = "|".join(f"(?:{p})" for p in fresh)
        self._put_aside(np.asarray(pc.match_substring_regex(self.lines, regex), dtype=bool))

    def _put_aside(self, mask: np.ndarray) -> None:
        """Keep the text of the newly masked lines, then blank them for Arrow's reads."""
        data, starts = self.data, self.starts
        for line in np.flatnonzero(mask & ~self.aside).tolist():
            start, end = starts[line], starts[line + 1] - 1  # the newline stays
            self.original[line] = bytes(data[start:end])
            data[start:end] = b" " * (end - start)
        self.aside |= mask

    # -- per snapshot ------------------------------------------------------------------------
    def _assemble(self, table: pa.Table, lines: np.ndarray) -> list[FlattenResult | None]:
        snapshot_of_row = self.snapshot_of_line[lines]
        columns, coerced_per_row = _contract_columns(table)
        count = len(self.bodies)
        rows = pa.array(snapshot_of_row)  # numpy ints: no object arrays (they import pandas)
        columns["snapshot_id"] = pa.array([b.snapshot_id for b in self.bodies],
                                          pa.string()).take(rows)
        columns["snapshot_at"] = pa.array([b.snapshot_at for b in self.bodies],
                                          TIMESTAMP).take(rows)
        n = table.num_rows
        columns["extra_fields"] = pa.nulls(n, pa.string())
        columns["quarantined_values"] = pa.array(np.zeros(n, np.int32))
        fast = pa.Table.from_arrays([columns[f.name] for f in SNAPSHOT_SCHEMA],
                                    schema=SNAPSHOT_SCHEMA)
        rows_per = np.bincount(snapshot_of_row, minlength=count)
        coerced_per = np.bincount(snapshot_of_row, weights=coerced_per_row, minlength=count)
        offsets = np.r_[0, np.cumsum(rows_per)]
        aside_lines = np.flatnonzero(self.aside)
        aside_per = np.searchsorted(self.snapshot_of_line[aside_lines], np.arange(count + 1))
        fast_ids = np.asarray(table.column("id").to_numpy(zero_copy_only=False))
        parts = [self._part(i, fast.slice(int(offsets[i]), int(rows_per[i])),
                            fast_ids[offsets[i]:offsets[i + 1]], int(coerced_per[i]),
                            aside_lines[aside_per[i]:aside_per[i + 1]])
                 for i in range(count)]
        return _combine(parts)

    def _part(self, index: int, fast: pa.Table, fast_ids: np.ndarray, coerced: int,
              aside: np.ndarray) -> _Part | None:
        """The snapshot's fast rows and its records set aside, or None to decline it."""
        body = self.bodies[index]
        if len(np.unique(fast_ids)) != len(fast_ids):
            return None  # a repeated id: flatten keeps the first occurrence in record order
        records = self._parse(aside)
        if records is None:
            return None
        other_ids = {r["id"] for r in records if type(r) is dict and type(r.get("id")) is int}
        if not other_ids.isdisjoint(fast_ids.tolist()):
            return None  # flatten would quarantine one of the two as a repeated id
        return _Part(body, fast, coerced, records)

    def _parse(self, lines: np.ndarray) -> list[object] | None:
        """The records on `lines`, or None when one is not JSON (the caller reports it)."""
        view, starts, original = memoryview(self.data), self.starts, self.original
        try:
            return [orjson.loads(original[i] if i in original else view[starts[i]:starts[i + 1]])
                    for i in lines.tolist()]
        except orjson.JSONDecodeError:
            return None


@dataclass(frozen=True)
class _Part:
    """A snapshot's rows read by Arrow, and its records set aside for `flatten`."""

    body: Body
    fast: pa.Table
    coerced: int
    aside: list[object]


def _combine(parts: list[_Part | None]) -> list[FlattenResult | None]:
    """Each snapshot's fast rows plus `flatten_many` of the records set aside (one pass)."""
    slow_parts = [p for p in parts if p is not None and p.aside]
    slow = iter(flatten_many([(p.aside, p.body.snapshot_id, p.body.snapshot_at)
                              for p in slow_parts]))
    results: list[FlattenResult | None] = []
    for part in parts:
        if part is None:
            results.append(None)
        elif not part.aside:
            results.append(FlattenResult(
                table=part.fast, quarantine=empty_quarantine(part.body.snapshot_id,
                                                             part.body.snapshot_at),
                new_fields=set(), coerced_values=part.coerced, quarantined_records=0,
                quarantined_values=0))
        else:
            other = next(slow)
            results.append(FlattenResult(
                table=pa.concat_tables([part.fast, other.table]),
                quarantine=other.quarantine, new_fields=other.new_fields,
                coerced_values=part.coerced + other.coerced_values,
                quarantined_records=other.quarantined_records,
                quarantined_values=other.quarantined_values))
    return results


def _learn_from_sample(bodies: Sequence[Body], sample: bytes) -> None:
    """Learn the drift of the batch's first lines: each failed read of a sample costs
    milliseconds, of the whole batch up to a second."""
    with suppress(_Decline):  # the whole batch meets the same error and is split
        _Batch([Body(bodies[0].snapshot_id, bodies[0].snapshot_at, sample)])._read()



def _line_starts(data: bytes) -> np.ndarray:
    """Offsets of every line start plus the end: memchr via `bytes.find`, no copies."""
    starts = [0]
    find, append = data.find, starts.append
    at = find(b"\n")
    while at >= 0:
        append(at + 1)
        at = find(b"\n", at + 1)
    if starts[-1] != len(data):
        append(len(data))
    return np.array(starts, dtype=np.int64)


def _pattern_for_error(message: str) -> str | None:
    """The lines to set aside after Arrow's error `message` (a regex), or None."""
    if "couldn't parse" in message:
        return _INT_WITH_FRACTION
    match = _COLUMN_ERROR.search(message)
    if match is None:
        return None
    path, found = match.group(1).split("/")[1:], match.group(2)
    start = _KIND_START.get(found)
    names = [p for p in path if p != "[]"]
    if start is None or not names:
        return None
    key = re.escape(orjson.dumps(names[-1]).decode()) + ":"
    return key + (r"\[[^\]]*" if path[-1] == "[]" else "") + start


def _unknown_key_patterns(table: pa.Table) -> list[str]:
    """Patterns for the keys Arrow found beyond the contract (top level and pricing)."""
    keys = [n for n in table.column_names if n not in READ_SCHEMA.names]
    for parent in PRICING_PARENTS:
        keys += [f.name for f in table.schema.field(parent).type
                 if f.name not in PRICING_KEYS]
    return [re.escape(orjson.dumps(k).decode()) + ":" for k in keys]


def _contract_typed(table: pa.Table) -> pa.Table:
    """The contract's columns only: unknown keys and pricing children dropped (their lines
    are set aside already)."""
    columns = []
    for field in READ_SCHEMA:
        column = table.column(field.name)
        if column.type != field.type:  # a pricing struct with an unknown child
            column = pa.chunked_array([
                pa.StructArray.from_arrays([chunk.field(k) for k in PRICING_KEYS],
                                           fields=list(_PRICING_STRUCT), mask=chunk.is_null())
                for chunk in column.chunks], _PRICING_STRUCT)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=READ_SCHEMA)


# -- rows Arrow reads otherwise, and the contract's columns --------------------------------
def _rows_arrow_reads_otherwise(table: pa.Table) -> np.ndarray:
    """Rows whose values Arrow reads differently from `flatten` (they go to `flatten`)."""
    bad = np.asarray(table.column("id").is_null(), dtype=bool).copy()
    for values in _float_columns(table):
        bad |= _true(pc.greater_equal(pc.abs(values), float(EXACT_FLOAT_INT)))
    for name in TIMESTAMP_FIELDS:
        bad |= _true(pc.greater(pc.abs(table.column(name)), float(MAX_EPOCH_S)))
    avx = table.column("has_avx")
    bad |= _true(pc.invert(pc.is_in(avx, pa.array([0, 1])))) & _true(avx.is_valid())
    versions = table.column("os_version")
    bad |= _true(pc.equal(versions, pc.trunc(versions)))  # 20 and 20.0 read alike
    bad |= _true(pc.greater(pc.list_value_length(table.column("volume_info")), 0))
    return bad


def _true(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean mask with NULL as False, as numpy."""
    return np.asarray(pc.fill_null(mask, False), dtype=bool)


def _float_columns(table: pa.Table) -> list[pa.ChunkedArray]:
    columns = [table.column(name) for name in FLOAT_FIELDS]
    for parent in PRICING_PARENTS:
        columns += [pc.struct_field(table.column(parent), [i]) for i in range(len(PRICING_KEYS))]
    return columns


def _per_distinct(values: pa.ChunkedArray, convert: Callable[[Any], Any],
                  to_type: pa.DataType) -> pa.Array:
    """`convert` of every non-null value, called once per distinct value (a day holds
    a few hundred distinct `local_ipaddrs` and a handful of `os_version`s)."""
    encoded = values.combine_chunks().dictionary_encode()
    converted = pa.array([convert(v) for v in encoded.dictionary.to_pylist()], to_type)
    return converted.take(encoded.indices)


def _contract_columns(table: pa.Table) -> tuple[dict[str, pa.ChunkedArray], np.ndarray]:
    """Contract columns from Arrow's columns (chunks kept: the day file combines them
    once), and the coerced values of each row."""
    cols = {name: table.column(name) for name in READ_SCHEMA.names}
    for parent in PRICING_PARENTS:
        struct = cols.pop(parent)
        for key, child in zip(PRICING_KEYS, struct.flatten(), strict=True):
            cols[pricing_column(parent, key)] = child
    for name in TIMESTAMP_FIELDS:
        cols[name] = timestamps(cols[name])  # in range: checked before
    avx, versions = cols["has_avx"], cols["os_version"]
    coerced = (np.asarray(avx.is_valid(), dtype=np.int64)
               + np.asarray(versions.is_valid(), dtype=np.int64))
    cols["has_avx"] = pc.equal(avx, 1)
    cols["os_version"] = _per_distinct(versions, to_json, pa.string())
    cols["local_ipaddrs"] = _per_distinct(cols["local_ipaddrs"], str.split,
                                          pa.list_(pa.string()))
    volumes = cols.pop("volume_info")  # only [] or NULL by now
    cols["volume_info"] = pc.if_else(volumes.is_null(), pa.scalar(None, pa.string()),
                                     pa.scalar("[]", pa.string()))
    return cols, coerced
