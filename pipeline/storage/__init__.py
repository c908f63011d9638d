"""Where data lives: the home (local or S3-compatible object storage), the layout
of datasets in it, the dataset registry and the Arrow schemas.

Modules: `alertlog`, `datasets`, `objectstore`, `schema`, `store`. The names below are what
the packages above import; they load on first use, so importing the package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "ALERT_LOG_DIR": "alertlog",
    "BILLED_CHARGE_SCHEMA": "schema",
    "BILLED_DAY_SCHEMA": "schema",
    "BILLED_QUARANTINE_SCHEMA": "schema",
    "BOOL_FIELDS": "schema",
    "CHARGE_FAMILY": "datasets",
    "DATASETS": "datasets",
    "Dataset": "datasets",
    "FLOAT_FIELDS": "schema",
    "INT_FIELDS": "schema",
    "JSON_FIELDS": "schema",
    "KNOWN_API_KEYS": "schema",
    "KNOWN_OFFER_KEYS": "schema",
    "LIST_INT_FIELDS": "schema",
    "LIST_STRING_FIELDS": "schema",
    "MARKET_BOOL_FIELDS": "schema",
    "MARKET_FAMILY": "datasets",
    "MARKET_FLOAT_FIELDS": "schema",
    "MARKET_INT_FIELDS": "schema",
    "MARKET_JSON_FIELDS": "schema",
    "MARKET_LIST_INT_FIELDS": "schema",
    "MARKET_OFFER_SCHEMA": "schema",
    "MARKET_QUARANTINE_SCHEMA": "schema",
    "MARKET_SCHEMA_VERSION": "schema",
    "MARKET_SNAPSHOT_LOG_SCHEMA": "schema",
    "MARKET_STRING_FIELDS": "schema",
    "MARKET_TIMESTAMP_FIELDS": "schema",
    "NO_ACCOUNT": "store",
    "OFFER_TYPES": "schema",
    "PRICING_KEYS": "schema",
    "PRICING_PARENTS": "schema",
    "QUARANTINE_SCHEMA": "schema",
    "RAW": "datasets",
    "RAW_CHARGES": "datasets",
    "RAW_MARKET": "datasets",
    "SCHEMA_VERSION": "schema",
    "SNAPSHOT_FAMILY": "datasets",
    "SNAPSHOT_LOG_SCHEMA": "schema",
    "SNAPSHOT_SCHEMA": "schema",
    "STRING_FIELDS": "schema",
    "Store": "store",
    "TIMESTAMP": "schema",
    "TIMESTAMP_FIELDS": "schema",
    "TMP_PREFIX": "store",
    "WriteConflict": "objectstore",
    "alert_log_dir": "alertlog",
    "alert_log_source": "alertlog",
    "check_account": "store",
    "dataset": "datasets",
    "family": "datasets",
    "is_remote": "objectstore",
    "parse_home": "objectstore",
    "pricing_column": "schema",
    "register_on": "objectstore",
    "sql_file_list": "store",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
