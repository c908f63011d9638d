"""From raw API answers to the Parquet history: the raw zone, flattening (the
value path and the columnar fast path), the day files and their quality checks.

Modules: `fastflatten`, `flatten`, `history`, `raw`. The names below are what the packages
above import; they load on first use, so importing the package stays cheap.
"""

from __future__ import annotations

from importlib import import_module

# public name -> the module of this package that defines it
_EXPORTS = {
    "Body": "fastflatten",
    "DayResult": "history",
    "FlattenResult": "flatten",
    "PART_FILE": "history",
    "RawSnapshot": "raw",
    "SORT_KEYS": "history",
    "WRITE_OPTIONS": "history",
    "day_path": "history",
    "dump_json": "raw",
    "flatten_bodies": "fastflatten",
    "flatten_many": "flatten",
    "forget_learned": "fastflatten",
    "format_time": "raw",
    "iter_snapshots": "raw",
    "land_pending": "history",
    "new_snapshot_id": "raw",
    "newest_snapshots": "history",
    "raw_partitions": "raw",
    "read_snapshot": "raw",
    "rebuild": "history",
    "rebuild_day": "history",
    "snapshot_files": "raw",
    "write_snapshot": "raw",
}
__all__ = [
    "PART_FILE",
    "SORT_KEYS",
    "WRITE_OPTIONS",
    "Body",
    "DayResult",
    "FlattenResult",
    "RawSnapshot",
    "day_path",
    "dump_json",
    "flatten_bodies",
    "flatten_many",
    "forget_learned",
    "format_time",
    "iter_snapshots",
    "land_pending",
    "new_snapshot_id",
    "newest_snapshots",
    "raw_partitions",
    "read_snapshot",
    "rebuild",
    "rebuild_day",
    "snapshot_files",
    "write_snapshot",
]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
