"""The market datasets as warehouse sources: a stand-in until the account-less sources land.

STAND-IN (marketmodels): the market belongs to no account, so its Parquet is partitioned by
`snapshot_date` only (`parquet/market_offers/snapshot_date=D/*.parquet`), which the dataset
registry and `Store.partition_files` (both keyed by account) do not list yet. This module
lists those folders, fingerprints them per day (so an incremental build knows the first
market day that changed: `market_changed_from`, what `market_prices` and `paid_vs_market`
recompute from) and gives the `{{ market_*_glob }}` placeholders, an empty stand-in file
when there is no market yet. The `[market]` thresholds of the savings advice are
placeholders too (`MarketThresholds`), rendered into the SQL like the cadence's cap.
It goes once the warehouse takes account-less datasets from the registry (tag
`ready/wh-accountless`) and the market helper's settings (`pipeline.market.settings`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from pipeline.storage.store import Store, is_hidden

TIMESTAMP = pa.timestamp("us", tz="UTC")
# The contract's columns the models read (the market helper's schema has more).
MARKET_OFFER_SCHEMA = pa.schema([
    pa.field("snapshot_id", pa.string()),
    pa.field("snapshot_at", TIMESTAMP),
    pa.field("offer_type", pa.string()),
    pa.field("id", pa.int64()),
    pa.field("machine_id", pa.int64()),
    pa.field("host_id", pa.int64()),
    pa.field("gpu_name", pa.string()),
    pa.field("num_gpus", pa.int64()),
    pa.field("dph_base", pa.float64()),
    pa.field("dph_total", pa.float64()),
    pa.field("min_bid", pa.float64()),
    pa.field("storage_cost", pa.float64()),
    pa.field("disk_space", pa.float64()),
    pa.field("reliability", pa.float64()),
    pa.field("verification", pa.string()),
    pa.field("geolocation", pa.string()),
    pa.field("dlperf", pa.float64()),
    pa.field("inet_down", pa.float64()),
    pa.field("inet_up", pa.float64()),
    pa.field("duration", pa.float64()),
    pa.field("rentable", pa.bool_()),
])
MARKET_SNAPSHOT_SCHEMA = pa.schema([
    pa.field("snapshot_id", pa.string()),
    pa.field("snapshot_at", TIMESTAMP),
    pa.field("requests", pa.int64()),
    pa.field("offers", pa.int64()),
    pa.field("incomplete", pa.bool_()),
    pa.field("gpu_names", pa.list_(pa.string())),
    pa.field("allocated_storage_gb", pa.float64()),
])
MARKET_SOURCES: dict[str, pa.Schema] = {
    "market_offers": MARKET_OFFER_SCHEMA,
    "market_snapshots": MARKET_SNAPSHOT_SCHEMA,
}
_DAY_RE = re.compile(r"^snapshot_date=(\d{4}-\d{2}-\d{2})$")
NEVER = date(9999, 12, 31)
EVERYTHING = date(1, 1, 1)


@dataclass(frozen=True)
class MarketThresholds:
    """The `[market]` settings the savings advice applies (defaults from issue 21)."""

    lookback_hours: float = 24
    min_seen_share: float = 0.5
    min_monthly_savings: float = 5
    min_savings_pct: float = 3

    @classmethod
    def of(cls, settings: Any) -> MarketThresholds:
        """The thresholds of `settings.market` where the settings have a `[market]` table
        with these names, else the defaults."""
        market = getattr(settings, "market", None)
        if market is None:
            return cls()
        return cls(**{name: float(getattr(market, name)) for name in cls.__dataclass_fields__
                      if getattr(market, name, None) is not None})

    def placeholders(self) -> dict[str, str]:
        """`{{ market_<name> }}` of each threshold, as SQL number literals."""
        return {f"market_{name}": repr(float(getattr(self, name)))
                for name in self.__dataclass_fields__}


def dataset_dir(store: Store, name: str) -> str:
    return store.path(f"parquet/{name}")


def listing(store: Store) -> dict[str, dict[str, list[pafs.FileInfo]]]:
    """{dataset: {ISO day: its visible Parquet files}} of the market datasets."""
    out: dict[str, dict[str, list[pafs.FileInfo]]] = {}
    for name in MARKET_SOURCES:
        root = dataset_dir(store, name)
        infos = store.fs.get_file_info(
            pafs.FileSelector(root, allow_not_found=True, recursive=True))
        days: dict[str, list[pafs.FileInfo]] = {}
        for info in infos:
            parts = info.path[len(root) + 1:].split("/")
            day = _DAY_RE.match(parts[0]) if len(parts) == 2 else None
            if (day and info.type == pafs.FileType.File and not is_hidden(parts[1])
                    and parts[1].endswith(".parquet")):
                days.setdefault(day.group(1), []).append(info)
        out[name] = days
    return out


def fingerprints(found: dict[str, dict[str, list[pafs.FileInfo]]]) -> dict[str, dict[str, str]]:
    """{dataset: {ISO day: digest of its files' names, sizes and modification times}}."""
    out: dict[str, dict[str, str]] = {}
    for name, days in found.items():
        out[name] = {}
        for day, files in sorted(days.items()):
            names = sorted(f"{i.base_name}:{i.size}:{i.mtime_ns}" for i in files)
            out[name][day] = hashlib.sha1("|".join(names).encode()).hexdigest()[:16]
    return out


def changed_from(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> date:
    """The first market day whose files were added, rewritten or removed (NEVER: none)."""
    days = [date.fromisoformat(d) for name in MARKET_SOURCES
            for d in set(old.get(name, {})) | set(new.get(name, {}))
            if old.get(name, {}).get(d) != new.get(name, {}).get(d)]
    return min(days, default=NEVER)


def placeholders(store: Store, models_dir: str, found: dict[str, dict[str, list[Any]]]
                 ) -> dict[str, str]:
    """`{{ market_offers_glob }}`, `{{ market_snapshots_glob }}` (an empty stand-in file
    while a dataset has none) and `{{ market_offers_union_by_name }}`."""
    out = {"market_offers_union_by_name": "true"}
    for name, schema in MARKET_SOURCES.items():
        if found.get(name):
            out[f"{name}_glob"] = store.uri(
                f"{dataset_dir(store, name)}/snapshot_date=*/*.parquet")
            continue
        target = f"{models_dir}/_empty/{name}/snapshot_date=1970-01-01/part-0.parquet"
        if not store.exists(target):
            store.write_parquet_atomic(target, schema.empty_table())
        out[f"{name}_glob"] = store.uri(target)
    return out
