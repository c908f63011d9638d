"""Helpers (no tests): the day files of registered datasets, written and read through the
storage layer (`Store` and `DayFamily.path`), so hand-made history sits exactly where the
pipeline's writers put it (hive folders from the registry, atomic writes)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa

from pipeline.storage.dayfiles import PART_FILE
from pipeline.storage.store import Store


def day_file(home: Path | str, dataset: str, account: str | None,
             day: date | str) -> tuple[Store, str]:
    """The store of `home` and the path of one dataset's day file in it."""
    store = Store(home)
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return store, f"{store.partition_dir(dataset, account, day)}/{PART_FILE}"


def write_day_file(home: Path | str, dataset: str, account: str | None, day: date | str,
                   table: pa.Table, **options: object) -> str:
    """Replace one day file with `table` (`options` go to pyarrow); returns its path."""
    store, path = day_file(home, dataset, account, day)
    store.write_parquet_atomic(path, table, **options)
    return path


def read_day_file(home: Path | str, dataset: str, account: str | None,
                  day: date | str) -> pa.Table | None:
    """One day file as stored, or None when there is none."""
    store, path = day_file(home, dataset, account, day)
    return store.read_parquet(path) if store.exists(path) else None
