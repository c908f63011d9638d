"""The Vast.ai API as a source: the HTTP client (auth, paging defence, retries) and
one collection of an account's instances into the raw zone.

Modules: `client` (the one class callers use, `VastClient`), behind it `auth` (where the
key may go), `transport` (one paced, retried GET), `responses` (what an answer means) and
`paging` (cursors followed without trusting them); `collect`. The names below are what
the packages above import; they load on first use, so importing the package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "BAD_BODY_RETRIES": "responses",
    "ChargesListing": "client",
    "ClientStats": "transport",
    "DAY_LAST_SECOND": "client",
    "InstanceListing": "client",
    "VastClient": "client",
    "client_for": "collect",
    "fetch_snapshot": "collect",
    "is_loopback_host": "auth",
    "raise_for_failures": "collect",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
