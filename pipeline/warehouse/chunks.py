"""The chunked writer: a daily model's rows, one chunk of days at a time, as day files.

Why its own module: a daily model is queried a chunk of days at a time and pyarrow writes
each chunk's (account, day) files on a thread pool while DuckDB computes the next chunk
(both release the GIL), so the two overlap; the files keep the types DuckDB's own COPY
would have given. What is written is published through the `DailyStore`.
"""

from __future__ import annotations

import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.core.errors import WarehouseError
from pipeline.warehouse.dailystore import DailyStore
from pipeline.warehouse.window import days_between


@dataclass(frozen=True)
class Chunking:
    """How daily models are cut: `days` per query, `writers` threads writing its files."""

    days: int
    writers: int


def chunks(window: tuple[date, date], chunk_days: int) -> list[tuple[date, date]]:
    """The window cut into runs of `chunk_days` days (the last may be shorter)."""
    days = days_between(*window)
    groups = (days[i:i + chunk_days] for i in range(0, len(days), chunk_days))
    return [(g[0], g[-1]) for g in groups]


@dataclass
class ChunkWrite:
    """One chunk's files being written on the pool: published once all are done."""

    staging: Path
    days: list[date]
    files: list[Future[int]]


def start_writes(pool: ThreadPoolExecutor, table: pa.Table, staging: Path,
                 days: list[date]) -> ChunkWrite:
    """Queue one Parquet file per (account, day) of a chunk's rows on `pool`.

    Why not DuckDB's COPY: a temporary table plus one filtered COPY per partition
    materialized the chunk twice and scanned it once per day, COPY ... PARTITION_BY costs
    more CPU than this whole path, and DuckDB's Parquet writer is about twice as slow as
    pyarrow's on the wide string columns. The files hold the same types either way.
    """
    parts = _rows_by_partition(table)
    files = [pool.submit(_write_partition, staging, account, day, batches)
             for (account, day), batches in sorted(parts.items())]
    return ChunkWrite(staging, days, files)


def publish_chunk(chunk: ChunkWrite, store: DailyStore, model: str, build_id: str) -> int:
    """Wait for a chunk's files, then swap them in for its days; returns rows written."""
    rows = sum(f.result() for f in chunk.files)
    store.replace_days(model, chunk.staging, chunk.days, build_id)
    shutil.rmtree(chunk.staging, ignore_errors=True)
    return rows


# DuckDB types its Parquet writer stores differently from their Arrow form: a HUGEINT (what
# sum() of integers gives) arrives as decimal128(38, 0) but DuckDB writes it as DOUBLE.
_DUCKDB_PARQUET_TYPES = {"HUGEINT": pa.float64(), "UHUGEINT": pa.float64()}


def as_duckdb_writes(relation: Any) -> pa.Table:
    """The relation as Arrow, with the column types DuckDB's own COPY would have written,
    so model files (and what analysts read from them) keep their types."""
    table = relation.to_arrow_table()
    for i, kind in enumerate(relation.types):
        target = _DUCKDB_PARQUET_TYPES.get(str(kind))
        if target is not None:
            table = table.set_column(i, table.field(i).name, table.column(i).cast(target))
    return table


# A batch cut into more runs of one (account, day) than this is sorted first.
_MAX_RUNS_PER_BATCH = 64


def _rows_by_partition(table: pa.Table) -> dict[tuple[str, date], list[pa.RecordBatch]]:
    """The rows of each (account, day) of `table`, as slices of its record batches.

    Why runs, not one filter per day: a filter reads the whole chunk once per partition,
    which cost more than writing the files. Rows a model reads from day files come out in
    long runs of one day, so cutting each batch at the key changes copies nothing; a batch
    in hash order (an aggregate) is sorted first.
    """
    for key in ("account", "day"):
        if table[key].null_count:
            raise WarehouseError(
                f"{table[key].null_count} rows have no {key}; fix the model's SQL.")
    parts: dict[tuple[str, date], list[pa.RecordBatch]] = {}
    for batch in table.to_batches():
        bounds = _run_bounds(batch)
        if len(bounds) - 1 > _MAX_RUNS_PER_BATCH:
            batch = batch.sort_by([("account", "ascending"), ("day", "ascending")])
            bounds = _run_bounds(batch)
        accounts, days = batch["account"], batch["day"]
        for start, end in pairwise(bounds):
            key = (accounts[start].as_py(), days[start].as_py())
            parts.setdefault(key, []).append(batch.slice(start, end - start))
    return parts


def _run_bounds(batch: pa.RecordBatch) -> list[int]:
    """Offsets where (account, day) changes in `batch`, with 0 and its length."""
    if batch.num_rows == 0:
        return [0]
    ends: set[int] = set()
    for key in ("account", "day"):
        ends.update(pc.run_end_encode(batch[key]).run_ends.to_pylist())
    return [0, *sorted(ends)]


def _write_partition(staging: Path, account: str, day: date,
                     batches: list[pa.RecordBatch]) -> int:
    """Write the rows of (`account`, `day`) under `staging`; returns how many."""
    folder = staging / f"account={account}" / f"day={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    part = pa.Table.from_batches(batches).drop_columns(["account", "day"])
    pq.write_table(part, folder / "data_0.parquet", compression="zstd",
                   use_dictionary=_dictionary_columns(part.schema))
    return part.num_rows


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary encoding: all but floating point ones, whose values rarely
    repeat (trying a dictionary on them first cost a quarter of the write time)."""
    return [f.name for f in schema if not pa.types.is_floating(f.type)]
