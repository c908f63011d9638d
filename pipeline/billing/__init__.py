"""Billed charges: fetched per day from the API, kept raw, flattened and stored as
their own dataset beside the instance history.

Modules: `charges` (fetch, collect, rebuild), `raw`, `flatten`, `days`. The names below
are what the packages above import; they load on first use, so importing the package
stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "BillDayResult": "charges",
    "DEFAULT_DAYS_BACK": "charges",
    "RESIDUAL_TYPE": "flatten",
    "RawBill": "raw",
    "check_days": "charges",
    "collect_charges": "charges",
    "day_range": "charges",
    "fetch_day": "charges",
    "flatten_bill": "flatten",
    "newest_bills": "days",
    "parse_description": "flatten",
    "raw_bill_days": "raw",
    "rebuild_charges": "charges",
    "stored_bill": "days",
    "stored_day_log": "days",
    "stored_day_total": "days",
    "write_raw_bill": "raw",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
