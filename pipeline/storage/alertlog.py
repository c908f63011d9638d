"""The alert log, declared where the other datasets of the home are.

The alert engine appends one NDJSON file per evaluation run under `alerts/log/day=<day>/`
(the registry's `alert_log`, a log of no account partitioned by day); the warehouse's
`alert_log` view reads every file at query time and the read-only query may read that
folder. Declaring it here, below all three, lets the warehouse find the log without
importing the alert engine.
"""

from __future__ import annotations

from datetime import date

from pipeline.storage.datasets import ALERT_LOG, dataset
from pipeline.storage.store import Store

ALERT_LOG_DIR = dataset(ALERT_LOG).folder
ALERT_LOG_SUFFIX = ".ndjson"
_EPOCH = date(1970, 1, 1)  # the day of the zero-byte stand-in below


def alert_log_source(store: Store) -> str:
    """The glob of every alert log file, which the warehouse's `alert_log` view reads at
    query time. A zero-byte stand-in under it keeps the glob matching before the first
    record (DuckDB refuses a glob matching nothing), so the view, created once, sees every
    later record without a rebuild."""
    empty = f"{store.partition_dir(ALERT_LOG, None, _EPOCH)}/_empty{ALERT_LOG_SUFFIX}"
    if not store.exists(empty):
        store.write_bytes_atomic(empty, b"")
    key = dataset(ALERT_LOG).partition_key
    return store.uri(store.path(ALERT_LOG_DIR, f"{key}=*", f"*{ALERT_LOG_SUFFIX}"))


def alert_log_dir(store: Store) -> str:
    """The folder of the alert log (no secret is ever written there): the one place outside
    the Parquet that the read-only warehouse connection may read."""
    return store.uri(store.path(ALERT_LOG_DIR))
