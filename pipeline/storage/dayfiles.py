"""A family's day files: one Parquet file per dataset and partition, rewritten whole.

Why one home: the instance history (`pipeline.landing.history`), the billed charges
(`pipeline.billing`) and the market (`pipeline.market`) all keep a family of datasets
written together for one partition (an account's day, or a day of no account) under that
partition's lock, with the commit log last. Where the file is, how it is sorted, encoded
and replaced, and when a stored file no longer fits its schema are the same for all of
them; what a family writes, and in which order of steps, stays with its writer.

Output is deterministic (rows sorted by the registry's keys, fixed writer options), so
re-deriving a day from raw writes byte-identical files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.storage.datasets import Dataset, family
from pipeline.storage.store import Store

PART_FILE = "part-0.parquet"
# One row group per day file, zstd; each family adds its encodings (`DayFamily.encodings`).
WRITE_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "compression_level": 7,
    "write_statistics": True,
    "row_group_size": 1 << 20,
    "data_page_size": 1 << 20,
}


class StaleDayFile(Exception):
    """A stored day file that is unreadable or of another schema (version): re-derive it."""


@dataclass(frozen=True)
class DayFamily:
    """The day files of one registered family (`pipeline.storage.datasets.family`)."""

    name: str
    encodings: Mapping[str, object] = field(default_factory=dict)  # use_dictionary, ...
    # True: tables are written in the chunks they come in, sorted only when out of order
    # (`in_order`); for a family whose day is large and mostly appended to (the market).
    keep_chunks: bool = False

    @property
    def members(self) -> tuple[Dataset, ...]:
        """The family's datasets in write order (the commit log last)."""
        return family(self.name)

    @property
    def schemas(self) -> dict[str, pa.Schema]:
        return {d.name: d.schema for d in self.members}

    def sort_keys(self, dataset: str) -> tuple[tuple[str, str], ...]:
        """The registry's row order of one dataset of the family."""
        return next(d for d in self.members if d.name == dataset).sort_keys

    @property
    def write_options(self) -> dict[str, object]:
        return {**WRITE_OPTIONS, **self.encodings}

    def path(self, store: Store, dataset: str, account: str | None, day: date) -> str:
        """`<partition dir>/part-0.parquet` of one dataset of the family."""
        return f"{store.partition_dir(dataset, account, day)}/{PART_FILE}"

    def read(self, store: Store, dataset: str, account: str | None,
             day: date) -> pa.Table | None:
        """The stored day file (None when there is none), cast to the registered schema;
        StaleDayFile when it is unreadable or was written under another schema."""
        schema = self.schemas[dataset]
        path = self.path(store, dataset, account, day)
        if not store.exists(path):
            return None
        try:
            table = store.read_parquet(path)
        except (OSError, pa.ArrowException) as exc:
            raise StaleDayFile(str(exc)) from None
        meta = table.schema.metadata or {}
        if any(meta.get(k) != v for k, v in (schema.metadata or {}).items()) or \
                not table.schema.equals(schema, check_metadata=False):
            raise StaleDayFile(f"{path} has another schema version")
        return table.cast(schema)  # Parquet names list items "element"

    def write(self, store: Store, account: str | None, day: date,
              tables: Mapping[str, pa.Table]) -> None:
        """Atomically rewrite the day file of each dataset in `tables`, sorted, in the
        family's order; the caller holds the partition's lock."""
        for dataset, schema in self.schemas.items():
            if dataset not in tables:
                continue
            directory = store.partition_dir(dataset, account, day)
            store.remove_stray_temps(directory)  # under the lock: no live writer here
            keys = list(self.sort_keys(dataset))
            if self.keep_chunks:
                table = in_order(tables[dataset].cast(schema), keys)
            else:
                table = tables[dataset].cast(schema).combine_chunks().sort_by(keys)
                table = table.combine_chunks()
            table = table.replace_schema_metadata(schema.metadata)
            store.write_parquet_atomic(f"{directory}/{PART_FILE}", table,
                                       **self.write_options)


def in_order(table: pa.Table, keys: list[tuple[str, str]]) -> pa.Table:
    """`table` in the order of `keys` (a stable sort), its chunks kept. A kept day is sorted
    already and a new part usually sorts after it, so the costly reordering of every column
    (0.8 s for a market day of 120k offers) is skipped when the order is already right; the
    Parquet bytes do not depend on the chunks."""
    order = pc.sort_indices(table.select([k for k, _ in keys]), sort_keys=keys)
    if len(order) and pc.all(pc.equal(order, pa.array(range(len(order)), order.type))).as_py():
        return table
    return table.take(order)
