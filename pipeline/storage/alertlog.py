"""The alert log, declared where the other datasets of the home are.

The alert engine appends one NDJSON file per evaluation run under `alerts/log/day=<day>/`;
the warehouse's `alert_log` view reads every file at query time and the read-only query
may read that folder. Declaring it here, below all three, lets the warehouse find the log
without importing the alert engine. (Not Parquet, so not in `datasets.DATASETS`.)
"""

from __future__ import annotations

from pipeline.storage.store import Store

ALERT_LOG_DIR = "alerts/log"
# A zero-byte file so the log's glob matches before the first record.
ALERT_LOG_EMPTY = f"{ALERT_LOG_DIR}/day=1970-01-01/_empty.ndjson"


def alert_log_source(store: Store) -> str:
    """The glob of every alert log file, which the warehouse's `alert_log` view reads at
    query time. A zero-byte stand-in under it keeps the glob matching before the first
    record (DuckDB refuses a glob matching nothing), so the view, created once, sees every
    later record without a rebuild."""
    empty = store.path(ALERT_LOG_EMPTY)
    if not store.exists(empty):
        store.write_bytes_atomic(empty, b"")
    return store.uri(store.path(ALERT_LOG_DIR, "day=*", "*.ndjson"))


def alert_log_dir(store: Store) -> str:
    """The folder of the alert log (no secret is ever written there): the one place outside
    the Parquet that the read-only warehouse connection may read."""
    return store.uri(store.path(ALERT_LOG_DIR))
