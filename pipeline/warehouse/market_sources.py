"""The market datasets as warehouse sources: a stand-in until the account-less sources land.

STAND-IN (marketmodels): the market belongs to no account, so its Parquet is partitioned by
`snapshot_date` only (`parquet/market_offers/snapshot_date=D/*.parquet`); the registry knows
it (`per_account=False`) but the build takes its sources by family and account. This module
lists the market's folders, fingerprints them per day (so an incremental build knows the first
market day that changed: `market_changed_from`, what `market_prices` and `paid_vs_market`
recompute from) and gives the `{{ market_*_glob }}` placeholders, an empty stand-in file
when there is no market yet. (The `[market]` thresholds of the savings advice are
placeholders too, from `pipeline.market.settings.MarketSettings.advice_placeholders`.)
It goes once the warehouse takes account-less datasets from the registry (tag
`ready/wh-accountless`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pyarrow.fs as pafs

from pipeline.storage.datasets import MARKET_FAMILY, dataset, family
from pipeline.storage.store import NO_ACCOUNT, Store

MARKET_SOURCES: tuple[str, ...] = tuple(
    d.name for d in family(MARKET_FAMILY) if d.name in ("market_offers", "market_snapshots"))
NEVER = date(9999, 12, 31)
EVERYTHING = date(1, 1, 1)


def listing(store: Store) -> dict[str, dict[tuple[str, str], list[pafs.FileInfo]]]:
    """{dataset: {(NO_ACCOUNT, ISO day): its visible Parquet files}} of the market sources."""
    return {name: store.partition_files(name) for name in MARKET_SOURCES}


def fingerprints(found: dict[str, dict[tuple[str, str], list[pafs.FileInfo]]]
                 ) -> dict[str, dict[str, str]]:
    """{dataset: {ISO day: digest of its files' names, sizes and modification times}}."""
    return {name: Store.fingerprints(files).get(NO_ACCOUNT, {}) for name, files in found.items()}


def changed_from(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> date:
    """The first market day whose files were added, rewritten or removed (NEVER: none)."""
    days = [date.fromisoformat(d) for name in MARKET_SOURCES
            for d in set(old.get(name, {})) | set(new.get(name, {}))
            if old.get(name, {}).get(d) != new.get(name, {}).get(d)]
    return min(days, default=NEVER)


def newest_day(found: dict[str, dict[tuple[str, str], list[Any]]]) -> date:
    """The newest day of the market's commit log (1970-01-01 without one): the savings
    advice reads the offers of the days before it only (`market_newest_day`)."""
    days = [day for _account, day in found.get("market_snapshots", {})]
    return date.fromisoformat(max(days)) if days else date(1970, 1, 1)


SchemaCache = dict[str, dict[str, list[Any]]]


def uniform(store: Store, found: dict[str, dict[tuple[str, str], list[Any]]],
            prints: dict[str, dict[str, str]], cached: SchemaCache,
            digest: Callable[[Store, str], str]) -> tuple[dict[str, bool], SchemaCache]:
    """Per market dataset, whether all its files share one Parquet schema, and the per-day
    schema digests to keep for the next build (footers read only for changed days).

    Why: `union_by_name` reads every file's footer at each bind; over a year of market days
    that cost 0.6 s a scan. Not checked on an object store (a request per file).
    """
    if store.remote is not None:
        return {}, {}
    flags: dict[str, bool] = {}
    out: SchemaCache = {}
    for name in MARKET_SOURCES:
        entries: dict[str, list[Any]] = {}
        for (_account, day), files in found.get(name, {}).items():
            fingerprint, entry = prints[name].get(day), cached.get(name, {}).get(day)
            if entry is None or entry[0] != fingerprint:
                entry = [fingerprint, sorted({digest(store, f.path) for f in files})]
            entries[day] = entry
        out[name] = entries
        flags[name] = len({h for _fp, hashes in entries.values() for h in hashes}) <= 1
    return flags, out


def placeholders(store: Store, models_dir: str, found: dict[str, dict[str, list[Any]]],
                 same_schema: dict[str, bool]) -> dict[str, str]:
    """`{{ market_offers_glob }}`, `{{ market_snapshots_glob }}` (an empty stand-in file
    while a dataset has none) and `{{ <dataset>_union_by_name }}` (false when all its files
    share one schema)."""
    out = {f"{name}_union_by_name": "false" if same_schema.get(name) else "true"
           for name in MARKET_SOURCES}
    for name in MARKET_SOURCES:
        if found.get(name):
            out[f"{name}_glob"] = store.parquet_glob(name)
            continue
        key = dataset(name).partition_key
        target = f"{models_dir}/_empty/{name}/{key}=1970-01-01/part-0.parquet"
        if not store.exists(target):
            store.write_parquet_atomic(target, dataset(name).schema.empty_table())
        out[f"{name}_glob"] = store.uri(target)
    return out
