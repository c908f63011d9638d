"""Helpers (no tests) that write real Parquet history in the layout docs/analyst.md describes,
through the storage layer (`tests.support.hive`).

Why pyarrow and the real schema: the SQL models must be tested on exactly what
pipeline.landing.history writes, hive partition folders included, not on an in-memory stand-in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.storage.schema import SNAPSHOT_LOG_SCHEMA, SNAPSHOT_SCHEMA
from tests.support.hive import read_day_file, write_day_file


def at(text: str) -> datetime:
    """'2024-03-01 10:15' -> an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def every(start: str, count: int, minutes: int = 15) -> list[datetime]:
    """`count` snapshot times `minutes` apart from `start`."""
    t0 = at(start)
    return [t0 + timedelta(minutes=minutes * i) for i in range(count)]


def snapshot_id(account: str, when: datetime) -> str:
    return f"{account}-{when:%Y%m%dT%H%M%S}"


def write_history(
    home: Path,
    rows: Iterable[dict[str, Any]],
    log: Iterable[tuple[str, datetime]] = (),
) -> None:
    """Write instance rows (dicts with `account`, `snapshot_at` and API fields) and the
    snapshot log. Every snapshot time of a row is logged; `log` adds snapshots (e.g. ones
    that listed no instance). Partitions touched are rewritten whole, like history.py."""
    by_part: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    snaps: dict[tuple[str, datetime], int] = {}
    for row in rows:
        row = dict(row)
        account, when = row.pop("account"), row["snapshot_at"]
        row.setdefault("snapshot_id", snapshot_id(account, when))
        row.setdefault("quarantined_values", 0)
        by_part[(account, when.date().isoformat())].append(row)
        snaps[(account, when)] = snaps.get((account, when), 0) + 1
    for account, when in log:
        snaps.setdefault((account, when), 0)
    for (account, day), part_rows in by_part.items():
        columns = {
            f.name: [r.get(f.name) for r in part_rows] for f in SNAPSHOT_SCHEMA
        }
        table = pa.table(columns, schema=SNAPSHOT_SCHEMA)
        write_day_file(home, "instance_snapshots", account, day, table)
    write_log(home, snaps)


def write_log(home: Path, snaps: dict[tuple[str, datetime], int]) -> None:
    """Write (merge into) the snapshot log partitions for the given snapshots."""
    by_part: dict[tuple[str, str], dict[datetime, int]] = defaultdict(dict)
    for (account, when), count in snaps.items():
        by_part[(account, when.date().isoformat())][when] = count
    for (account, day), entries in by_part.items():
        old = read_day_file(home, "snapshots", account, day)
        for rec in old.to_pylist() if old is not None else []:
            entries.setdefault(rec["snapshot_at"], rec["instances"])
        times = sorted(entries)
        table = pa.table({
            "snapshot_id": [snapshot_id(account, t) for t in times],
            "snapshot_at": times,
            "instances": [entries[t] for t in times],
            "quarantined_records": [0] * len(times),
            "quarantined_values": [0] * len(times),
            "pages": [1] * len(times),
            "new_fields": [[] for _ in times],
            "schema_version": [1] * len(times),
        }, schema=SNAPSHOT_LOG_SCHEMA)
        write_day_file(home, "snapshots", account, day, table)


def instance_rows(
    account: str, instance_id: int, times: list[datetime], states: list[dict[str, Any]],
    **common: Any,
) -> list[dict[str, Any]]:
    """One row per time: `common` fields overlaid with that time's state dict."""
    assert len(times) == len(states)
    out = []
    for when, state in zip(times, states, strict=True):
        row = {"account": account, "snapshot_at": when, "id": instance_id, **common, **state}
        out.append(row)
    return out


RUN = {"actual_status": "running", "intended_status": "running"}
STOPPED = {"actual_status": "exited", "intended_status": "stopped"}
