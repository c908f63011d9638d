"""The market as a third source beside instances and bills: snapshots of the offer search
for the GPU models the accounts rent, kept raw and as Parquet that belongs to no account.

Modules: `settings` (the `[market]` table), `search` (the query and its continuation by
price), `http` (the search over the project's HTTP client), `raw` (the raw zone), `schema`
and `flatten` (the offer contract, whose schemas live in `pipeline.storage.schema`), `landing`
(the Parquet day files), `collect` (one snapshot end to end). The names below are what the packages
above import; they load on first use, so importing the package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "MarketSettings": "settings",
    "MarketSnapshotResult": "collect",
    "collect_market": "collect",
    "gpu_names_to_search": "collect",
    "land_market_pending": "landing",
    "market_settings": "settings",
    "newest_market_snapshot": "landing",
    "rebuild_market": "landing",
    "search_client_for": "collect",
    "take_market_snapshot": "collect",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
