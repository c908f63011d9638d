"""What one build leaves for the next: `warehouse_state.json`, and the names of the files.

Why its own module: the state is the one thing every stage of a build reads (window
planning, source binding, the daily store) or writes (the commit), so it lives apart from
all of them. The state holds the source fingerprints, the model file manifest, the schema
digests of the history partitions and the identity of the DuckDB file the build swapped
in; a state of another `STATE_VERSION` (or none) means a full build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.storage.atomic import write_local_atomic
from pipeline.storage.schema import SCHEMA_VERSION
from pipeline.warehouse.models import Model
from pipeline.warehouse.paths import Paths

DB_NAME = "warehouse.duckdb"
STATE_NAME = "warehouse_state.json"
# Files a build replaced stay readable this long for sessions holding an older warehouse.
RETAIN_SUPERSEDED_SECONDS = 3600
STATE_VERSION = 1

# Progress messages of a build (one line each).
Progress = Callable[[str], None]
# Per history dataset: {account: {ISO day: fingerprint of that partition's files}}; the
# account is `Store`'s NO_ACCOUNT ("") for a dataset of no account.
Fingerprints = dict[str, dict[str, dict[str, str]]]


def load_state(paths: Paths) -> dict[str, Any]:
    """The last build's state, or {} (none, unreadable or of another version)."""
    try:
        state = json.loads(paths.state.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return state if state.get("version") == STATE_VERSION else {}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` all at once: a killed build leaves the old state or the new."""
    # compact: at a year it lists thousands of files, written on every build
    write_local_atomic(path, json.dumps(data, separators=(",", ":"), sort_keys=True))


def models_signature(models: Sequence[Model], cadence_minutes: int) -> str:
    """Changes when any model SQL, the schema version or the cadence changes (full rebuild)."""
    h = hashlib.sha1(f"{SCHEMA_VERSION}|{cadence_minutes}|{STATE_VERSION}".encode())
    for m in models:
        h.update(m.name.encode())
        h.update(m.sql.encode())
    return h.hexdigest()
