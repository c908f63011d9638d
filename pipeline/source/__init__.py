"""The Vast.ai API as a source: the HTTP client (auth, paging defence, retries) and
one collection of an account's instances into the raw zone.

Modules: `client`, `collect`. The names below are what the packages above import; they load
on first use, so importing the package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "BAD_BODY_RETRIES": "client",
    "ChargesListing": "client",
    "DAY_LAST_SECOND": "client",
    "VastClient": "client",
    "client_for": "collect",
    "fetch_snapshot": "collect",
    "is_loopback_host": "client",
    "raise_for_failures": "collect",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
