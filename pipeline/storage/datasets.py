"""The one registry of what the data home holds: every raw zone and Parquet dataset.

Why one registry: the storage layout (`pipeline.storage.store`), the writers
(`pipeline.landing.history`, `pipeline.billing.charges`) and the warehouse sources
(`pipeline.warehouse.build`) must agree on names,
partition columns, schemas and sort orders; declaring a dataset once keeps them from
drifting. Every dataset is hive-partitioned by one UTC-day column (`partition_key`), and
first by `account` when it holds one account's data (`per_account`); the market data
belongs to no account (the offers are the same for every renter), so it is partitioned by
its day only. DuckDB, Spark and Trino read either layout as is.

A *family* is the set of Parquet datasets written together for one partition (an account's
day, or a day of an account-less family) under that partition's lock; its last member is
the commit record (a log) and is written last.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pipeline.storage.schema import (
    BILLED_CHARGE_SCHEMA,
    BILLED_DAY_SCHEMA,
    BILLED_QUARANTINE_SCHEMA,
    MARKET_OFFER_SCHEMA,
    MARKET_QUARANTINE_SCHEMA,
    MARKET_SNAPSHOT_LOG_SCHEMA,
    QUARANTINE_SCHEMA,
    SNAPSHOT_LOG_SCHEMA,
    SNAPSHOT_SCHEMA,
)

SortKeys = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Dataset:
    """One dataset: where it lives under the home and how its partitions are named."""

    name: str
    folder: str                      # under the home, '/'-separated
    partition_key: str               # the hive column holding the UTC day
    schema: pa.Schema | None = None  # None for a raw zone (response files, not Parquet)
    sort_keys: SortKeys = ()
    family: str = ""                 # datasets written together per partition
    per_account: bool = True         # partitioned by `account` first (False: by day only)

    @property
    def is_parquet(self) -> bool:
        return self.schema is not None

    @property
    def partition_columns(self) -> tuple[str, ...]:
        """The hive columns of its folders, outermost first: (`account`, day) or (day,)."""
        return ("account", self.partition_key) if self.per_account else (self.partition_key,)


SNAPSHOT_FAMILY = "snapshots"
CHARGE_FAMILY = "charges"
MARKET_FAMILY = "market"
_BY_SNAPSHOT: SortKeys = (("snapshot_at", "ascending"), ("snapshot_id", "ascending"))

_ALL: tuple[Dataset, ...] = (
    Dataset("raw", "raw", "snapshot_date"),
    Dataset("raw_charges", "raw_charges", "day"),
    Dataset("instance_snapshots", "parquet/instance_snapshots", "snapshot_date",
            SNAPSHOT_SCHEMA, (("id", "ascending"), ("snapshot_at", "ascending"),
                              ("snapshot_id", "ascending")), SNAPSHOT_FAMILY),
    Dataset("quarantine", "parquet/quarantine", "snapshot_date", QUARANTINE_SCHEMA,
            _BY_SNAPSHOT, SNAPSHOT_FAMILY),
    Dataset("snapshots", "parquet/snapshots", "snapshot_date", SNAPSHOT_LOG_SCHEMA,
            _BY_SNAPSHOT, SNAPSHOT_FAMILY),
    Dataset("billed_charges", "parquet/billed_charges", "day", BILLED_CHARGE_SCHEMA,
            (("contract_type", "ascending"), ("contract_id", "ascending"),
             ("source", "ascending"), ("item_type", "ascending")), CHARGE_FAMILY),
    Dataset("billed_quarantine", "parquet/billed_quarantine", "day",
            BILLED_QUARANTINE_SCHEMA, (("source", "ascending"), ("field", "ascending")),
            CHARGE_FAMILY),
    Dataset("billed_days", "parquet/billed_days", "day", BILLED_DAY_SCHEMA,
            (("fetched_at", "ascending"),), CHARGE_FAMILY),
    # The market (no account): one raw file per market snapshot, then its family.
    Dataset("raw_market", "raw_market", "snapshot_date", per_account=False),
    Dataset("market_offers", "parquet/market_offers", "snapshot_date", MARKET_OFFER_SCHEMA,
            (*_BY_SNAPSHOT, ("offer_type", "ascending"), ("id", "ascending")), MARKET_FAMILY,
            per_account=False),
    Dataset("market_quarantine", "parquet/market_quarantine", "snapshot_date",
            MARKET_QUARANTINE_SCHEMA, _BY_SNAPSHOT, MARKET_FAMILY, per_account=False),
    Dataset("market_snapshots", "parquet/market_snapshots", "snapshot_date",
            MARKET_SNAPSHOT_LOG_SCHEMA, _BY_SNAPSHOT, MARKET_FAMILY, per_account=False),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in _ALL}
RAW = "raw"
RAW_CHARGES = "raw_charges"
RAW_MARKET = "raw_market"
PARQUET_DATASETS: tuple[str, ...] = tuple(d.name for d in _ALL if d.is_parquet)


def dataset(name: str) -> Dataset:
    """The registered dataset `name` (ValueError for an unknown name: a programming error)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}") from None


def family(name: str) -> tuple[Dataset, ...]:
    """The Parquet datasets of one family in write order (the commit log last)."""
    members = tuple(d for d in _ALL if d.family == name)
    if not members:
        raise ValueError(f"unknown dataset family {name!r}")
    return members
