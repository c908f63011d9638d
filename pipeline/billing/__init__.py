"""Billed charges: fetched per day from the API, kept raw, flattened and stored as
their own dataset beside the instance history.

Modules: `charges`. The names below are what the packages above import; they load on first
use, so importing the package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "BillDayResult": "charges",
    "DEFAULT_DAYS_BACK": "charges",
    "RESIDUAL_TYPE": "charges",
    "RawBill": "charges",
    "check_days": "charges",
    "collect_charges": "charges",
    "day_range": "charges",
    "fetch_day": "charges",
    "flatten_bill": "charges",
    "newest_bills": "charges",
    "parse_description": "charges",
    "raw_bill_days": "charges",
    "rebuild_charges": "charges",
    "stored_bill": "charges",
    "stored_day_log": "charges",
    "stored_day_total": "charges",
    "write_raw_bill": "charges",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
