"""The columnar fast path of flattening: a clean snapshot parsed by Arrow's JSON reader.

Why: the value-by-value path (`pipeline.flatten`) parses every record into Python objects
and converts ~110 columns of them back into Arrow; for a snapshot of 1,000 instances that
is most of a rebuild's time. Arrow's JSON reader, given the contract's explicit schema,
goes from NDJSON bytes straight to typed columns (the nested pricing objects arrive as
structs and are flattened to `search__*` / `instance__*` columns here).

Exactness first: `fast_flatten` returns a result only when it can prove that the
value-by-value path would produce the same table, quarantine and counters; otherwise it
returns None and the caller falls back. Arrow's reader is strict (a string where a
number is declared, an unknown key, a non-object line all raise), and the checks below
decline what Arrow would read differently from `flatten`: integers beyond float64's
exact range in float columns, epoch seconds beyond year 9999, duplicate or missing ids,
`has_avx` outside 0/1, integral `os_version` numbers (Arrow cannot tell 20 from 20.0),
non-empty `volume_info`. The hypothesis test in `tests/test_fastflatten.py` checks the
equivalence on generated clean and drifted snapshots, down to the Parquet bytes.

The schema read here is the API's own shape, which differs from the contract's in three
documented places (`API_FORMS`): `has_avx` arrives as 0/1, `os_version` as a number and
`local_ipaddrs` as one space-separated string; they are converted exactly as `flatten`
converts them, and counted as coerced values the same way.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from pipeline.flatten import (
    _EXACT_FLOAT_INT,
    FlattenResult,
    _Context,
    _timestamps,
    to_json,
)
from pipeline.schema import (
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
_PARSE = pj.ParseOptions(explicit_schema=READ_SCHEMA, unexpected_field_behavior="error")
# One thread, 256 KiB blocks: measured on a loaded 2-core machine, Arrow's thread pool cost
# more wall time than it saved, and a drifted snapshot fails within its first block.
_READ = pj.ReadOptions(use_threads=False, block_size=1 << 18)
_FLOAT_COLUMNS = FLOAT_FIELDS + tuple(
    pricing_column(p, k) for p in PRICING_PARENTS for k in PRICING_KEYS
)


class _Decline(Exception):
    """The snapshot is not one the fast path reproduces exactly: use `flatten`."""


def fast_flatten(body: bytes, snapshot_id: str, snapshot_at: datetime) -> FlattenResult | None:
    """`flatten`'s exact result for NDJSON `body`, or None when the fast path declines."""
    if not body:
        return None  # an empty snapshot: nothing to gain
    try:
        table = pj.read_json(
            pa.BufferReader(body),
            read_options=_READ,
            parse_options=_PARSE,
        ).combine_chunks()
        columns, coerced = _columns(table)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, _Decline):
        return None
    n = table.num_rows
    columns["snapshot_id"] = pa.array([snapshot_id] * n, pa.string())
    columns["snapshot_at"] = pa.array([snapshot_at] * n, TIMESTAMP)
    columns["extra_fields"] = pa.nulls(n, pa.string())
    columns["quarantined_values"] = pa.array([0] * n, pa.int32())
    out = pa.Table.from_arrays([columns[f.name] for f in SNAPSHOT_SCHEMA], schema=SNAPSHOT_SCHEMA)
    return FlattenResult(
        table=out,
        quarantine=_Context(snapshot_id, snapshot_at, []).quarantine_table(),
        new_fields=set(),
        coerced_values=coerced,
        quarantined_records=0,
        quarantined_values=0,
    )


def _columns(table: pa.Table) -> tuple[dict[str, pa.Array], int]:
    """Contract columns from Arrow's columns, and the count of coerced values."""
    cols: dict[str, pa.Array] = {}
    for name in READ_SCHEMA.names:
        column = table.column(name)
        cols[name] = column.chunk(0) if column.num_chunks else pa.array([], column.type)
    ids = cols["id"]
    if ids.null_count or len(pc.unique(ids)) != len(ids):
        raise _Decline  # flatten quarantines such records
    for parent in PRICING_PARENTS:
        struct = cols.pop(parent)
        for key, child in zip(PRICING_KEYS, struct.flatten(), strict=True):
            cols[pricing_column(parent, key)] = child
    _check_exact_floats(pa.concat_arrays([cols[name] for name in _FLOAT_COLUMNS]))
    for name in TIMESTAMP_FIELDS:
        stamps = _timestamps(cols[name])
        if stamps is None:  # beyond year 9999: flatten quarantines the value
            raise _Decline
        cols[name] = stamps
    coerced = _api_forms(cols)
    return cols, coerced


def _check_exact_floats(values: pa.Array) -> None:
    """Decline numbers whose magnitude reaches 2**53: Arrow may have rounded an integer
    that `flatten` would quarantine (it refuses to round integers into float64)."""
    if len(values) > values.null_count and pc.max(pc.abs(values)).as_py() >= _EXACT_FLOAT_INT:
        raise _Decline


def _api_forms(cols: dict[str, pa.Array]) -> int:
    """Convert the API-typed columns to the contract's types; return the coerced count."""
    avx = cols["has_avx"]
    if not pc.all(pc.is_in(avx, pa.array([0, 1])), min_count=0).as_py():
        raise _Decline  # flatten quarantines a flag of 2
    cols["has_avx"] = pc.equal(avx, 1)
    versions = cols["os_version"].to_pylist()
    if any(v is not None and v.is_integer() for v in versions):
        raise _Decline  # 20 and 20.0 read alike; flatten would write "20" or "20.0"
    cols["os_version"] = pa.array([None if v is None else to_json(v) for v in versions],
                                  pa.string())
    ips = cols["local_ipaddrs"].to_pylist()
    cols["local_ipaddrs"] = pa.array([None if v is None else v.split() for v in ips],
                                     pa.list_(pa.string()))
    volumes = cols.pop("volume_info")
    if len(volumes) > volumes.null_count and pc.max(pc.list_value_length(volumes)).as_py():
        raise _Decline  # a non-empty volume list: its JSON text is flatten's to write
    cols["volume_info"] = pc.if_else(volumes.is_null(), pa.scalar(None, pa.string()),
                                     pa.scalar("[]", pa.string()))
    return (len(avx) - avx.null_count) + (len(versions) - cols["os_version"].null_count)
