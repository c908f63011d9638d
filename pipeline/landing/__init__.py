"""From raw API answers to the Parquet history: the raw zone, flattening (the
value path and the columnar fast path), the day files and their quality checks.

Modules: `fastflatten`, `flatten`, `history`, `raw`, `rawzone` (what every raw zone
shares). The names below are what the packages above import; they load on first use, so
importing the package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "Body": "fastflatten",
    "DayResult": "history",
    "FlattenResult": "flatten",
    "RawSnapshot": "raw",
    "day_path": "history",
    "dump_json": "rawzone",
    "flatten_bodies": "fastflatten",
    "flatten_many": "flatten",
    "forget_learned": "fastflatten",
    "format_time": "rawzone",
    "iter_snapshots": "raw",
    "land_pending": "history",
    "new_snapshot_id": "raw",
    "newest_snapshots": "history",
    "raw_file_name": "rawzone",
    "raw_file_path": "rawzone",
    "raw_files": "rawzone",
    "raw_partitions": "raw",
    "read_snapshot": "raw",
    "rebuild": "history",
    "rebuild_day": "history",
    "snapshot_files": "raw",
    "write_snapshot": "raw",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
