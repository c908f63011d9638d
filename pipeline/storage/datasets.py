"""The one registry of what the data home holds: every raw zone and Parquet dataset, and
the other things kept there (the alert log and state, the locks, the model Parquet, the
reports and exports), each with its kind.

Why one registry: the storage layout (`pipeline.storage.store`), the writers
(`pipeline.landing.history`, `pipeline.billing.days`, through `pipeline.storage.dayfiles`)
and the warehouse sources (`pipeline.warehouse.sources`) must agree on names, partition
columns, schemas and sort orders; declaring a dataset once keeps them from
drifting. Every dataset is hive-partitioned by one UTC-day column (`partition_key`), and
first by `account` when it holds one account's data (`per_account`); the market data
belongs to no account (the offers are the same for every renter), so it is partitioned by
its day only. DuckDB, Spark and Trino read either layout as is.

Entries of other kinds (`KIND_*`) say where that thing lives, so every caller takes the
path from here instead of spelling it: `alert_log` (NDJSON, one file per evaluation run,
by day and no account), `alert_state` (one JSON file), `locks` (lock files or object-store
leases), `models` (the warehouse's per-day model Parquet, one folder per model), and
`reports` and `exports` (written on this machine, under `pipeline.core.config.local_dir`,
even for an `s3://` home: `local`).

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
# What an entry is: the kinds of things the home holds.
KIND_RAW = "raw zone"              # the API's answers as sent (scrubbed), the source of truth
KIND_PARQUET = "parquet"           # typed history, derived from a raw zone
KIND_LOG = "log"                   # records appended, one file per run (the alert log)
KIND_STATE = "state"               # one file rewritten whole (the alert state)
KIND_LOCKS = "locks"               # lock files or object-store leases, one per partition
KIND_MODELS = "model parquet"      # the warehouse's per-day models, one folder per model
KIND_REPORTS = "reports"           # HTML, Markdown, CSV per report
KIND_EXPORTS = "exports"           # FOCUS exports


@dataclass(frozen=True)
class Dataset:
    """One thing the home holds: where it lives and how its partitions are named."""

    name: str
    folder: str                      # under the home, '/'-separated (the file, for state)
    partition_key: str = ""          # the hive column holding the UTC day ("": none)
    schema: pa.Schema | None = None  # the Parquet contract (None for anything else)
    sort_keys: SortKeys = ()
    family: str = ""                 # datasets written together per partition
    per_account: bool = True         # partitioned by `account` first (False: by day only)
    kind: str = ""                   # KIND_*; default: KIND_PARQUET with a schema, else raw
    local: bool = False              # under `local_dir(home)`, never on an object store

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", KIND_PARQUET if self.schema else KIND_RAW)

    @property
    def is_parquet(self) -> bool:
        return self.schema is not None

    @property
    def partition_columns(self) -> tuple[str, ...]:
        """The hive columns of its folders, outermost first: (`account`, day), (day,), or
        none for an entry that is not partitioned."""
        if not self.partition_key:
            return ()
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
    # What else the home holds.
    Dataset("alert_log", "alerts/log", "day", per_account=False, kind=KIND_LOG),
    Dataset("alert_state", "alerts/state.json", kind=KIND_STATE),
    Dataset("locks", "_locks", kind=KIND_LOCKS),
    Dataset("models", "parquet/models", kind=KIND_MODELS),
    Dataset("reports", "reports", kind=KIND_REPORTS, local=True),
    Dataset("exports", "exports", kind=KIND_EXPORTS, local=True),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in _ALL}
RAW = "raw"
RAW_CHARGES = "raw_charges"
RAW_MARKET = "raw_market"
ALERT_LOG = "alert_log"
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
