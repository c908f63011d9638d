"""Where the market history lives in the home, and its day lock: the one place the market
asks the storage layer about account-less datasets.

    raw_market/snapshot_date=<YYYY-MM-DD>/<stamp>_<snapshot_id>.ndjson.zst
    parquet/market_offers/snapshot_date=<YYYY-MM-DD>/part-0.parquet
    parquet/market_quarantine/snapshot_date=<YYYY-MM-DD>/part-0.parquet
    parquet/market_snapshots/snapshot_date=<YYYY-MM-DD>/part-0.parquet   (the commit log)

The market belongs to no account, so there is no `account=` level: DuckDB, Spark and Trino
read `snapshot_date` as the one hive partition column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import TypeVar

import pyarrow.fs as pafs

from pipeline.storage.store import Store, is_hidden

T = TypeVar("T")
RAW_MARKET = "raw_market"
MARKET_OFFERS = "market_offers"
MARKET_QUARANTINE = "market_quarantine"
MARKET_SNAPSHOTS = "market_snapshots"
# The Parquet family in write order: the commit log last.
MARKET_FAMILY: tuple[str, ...] = (MARKET_OFFERS, MARKET_QUARANTINE, MARKET_SNAPSHOTS)
PARTITION_KEY = "snapshot_date"
_FOLDERS = {RAW_MARKET: RAW_MARKET, **{name: f"parquet/{name}" for name in MARKET_FAMILY}}
_DAY_RE = re.compile(rf"^{PARTITION_KEY}=(\d{{4}}-\d{{2}}-\d{{2}})$")
_LOCK_NAME = "market"  # the day lock of the market family (no account to lock on)


def dataset_dir(store: Store, dataset: str) -> str:
    return store.path(_FOLDERS[dataset])


def partition_dir(store: Store, dataset: str, day: date) -> str:
    """`<dataset dir>/snapshot_date=<YYYY-MM-DD>`."""
    return f"{dataset_dir(store, dataset)}/{PARTITION_KEY}={day.isoformat()}"


def parquet_glob(store: Store, dataset: str) -> str:
    """The hive glob DuckDB reads a market dataset with."""
    return store.uri(f"{dataset_dir(store, dataset)}/{PARTITION_KEY}=*/*.parquet")


def days(store: Store, dataset: str) -> list[date]:
    """The days with a partition folder in `dataset`, sorted."""
    infos = store.fs.get_file_info(
        pafs.FileSelector(dataset_dir(store, dataset), allow_not_found=True))
    found = [
        date.fromisoformat(m[1]) for i in infos
        if i.type == pafs.FileType.Directory and not is_hidden(i.base_name)
        and (m := _DAY_RE.match(i.base_name))
    ]
    return sorted(found)


def run_locked(store: Store, day: date, work: Callable[[], T]) -> T:
    """`work()` under the market day's lock (every write of the day's family)."""
    return store.run_locked(_LOCK_NAME, day, work)
