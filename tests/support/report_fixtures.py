"""Warehouses for the report and FOCUS tests, built from Parquet history.

The history is written in the layout described in docs/analyst.md (hive-partitioned
`instance_snapshots` with `pipeline.storage.schema.SNAPSHOT_SCHEMA`, plus the snapshot log),
then the real `pipeline.warehouse.build.build` turns it into the analyst tables, so the reports are
checked against the warehouse the product ships, not against a stand-in.

`scenario_history` is small and hand-made: every feature a report shows happens in it at
a known time (a bid price change, a stop and restart, an outage, a slow start, an idle
GPU, a destroyed instance, a collection gap, a second account), placed relative to a
start day (any midnight: the report tests also place it across a year end). What its
reports must show is worked out in plain Python in tests/support/scenario_oracle.py.
`fleet_history` is the simulator's seeded FleetModel, for realistic screenshots.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.storage.datasets import dataset
from pipeline.storage.schema import SCHEMA_VERSION, SNAPSHOT_SCHEMA, TIMESTAMP
from tests.support.hive import write_day_file
from tests.support.warehouse import build_at_cadence

CADENCE = timedelta(minutes=15)
START = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
DAYS = 5

SNAPSHOT_LOG_SCHEMA = pa.schema([
    pa.field("snapshot_id", pa.string()),
    pa.field("snapshot_at", TIMESTAMP),
    pa.field("instances", pa.int64()),
    pa.field("quarantined_records", pa.int64()),
    pa.field("quarantined_values", pa.int64()),
    pa.field("pages", pa.int64()),
    pa.field("new_fields", pa.list_(pa.string())),
    pa.field("schema_version", pa.int32()),
])


class HistoryWriter:
    """Collects snapshots in memory, then writes one Parquet file per account and day."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.rows: dict[tuple[str, date], list[dict]] = defaultdict(list)
        self.log: dict[tuple[str, date], list[dict]] = defaultdict(list)

    def snapshot(self, account: str, at: datetime, records: list[dict[str, Any]]) -> None:
        sid = f"{account}-{at:%Y%m%dT%H%M}"
        key = (account, at.date())
        for rec in records:
            self.rows[key].append({**rec, "snapshot_id": sid, "snapshot_at": at,
                                   "quarantined_values": 0})
        self.log[key].append({"snapshot_id": sid, "snapshot_at": at, "instances": len(records),
                              "quarantined_records": 0, "quarantined_values": 0, "pages": 1,
                              "new_fields": [], "schema_version": SCHEMA_VERSION})

    def write(self) -> None:
        for (account, day), rows in self.rows.items():
            table = pa.Table.from_pylist(rows, schema=SNAPSHOT_SCHEMA)
            self._write("instance_snapshots", account, day, table)
        for (account, day), rows in self.log.items():
            self._write("snapshots", account, day,
                        pa.Table.from_pylist(rows, schema=SNAPSHOT_LOG_SCHEMA))

    def _write(self, dataset: str, account: str, day: date, table: pa.Table) -> None:
        write_day_file(self.home, dataset, account, day, table, compression="zstd")


# --- the hand-made scenario -------------------------------------------------------------


@dataclass
class Spec:
    """One instance of the scenario; `status(t)` gives (actual, intended) or None if absent."""

    id: int
    label: str | None
    gpu_name: str
    num_gpus: int
    machine_id: int
    host_id: int
    country: str
    dph_base: float
    storage: float
    is_bid: bool = False
    util: float = 0.8
    reliability2: float = 0.99
    account: str = "main"
    events: list[tuple[datetime, datetime, str | None, str]] = field(default_factory=list)
    born: datetime = START
    destroyed: datetime | None = None
    price_steps: list[tuple[datetime, float]] = field(default_factory=list)

    def state(self, t: datetime) -> tuple[str | None, str] | None:
        if t < self.born or (self.destroyed and t >= self.destroyed):
            return None
        for s, e, actual, intended in self.events:
            if s <= t < e:
                return actual, intended
        return "running", "running"

    def price(self, t: datetime) -> float:
        price = self.dph_base
        for at, p in self.price_steps:
            if t >= at:
                price = p
        return price

    def record(self, t: datetime) -> dict[str, Any] | None:
        state = self.state(t)
        if state is None:
            return None
        actual, intended = state
        base = self.price(t)
        running = actual == "running"
        return {
            "id": self.id, "label": self.label, "gpu_name": self.gpu_name,
            "num_gpus": self.num_gpus, "machine_id": self.machine_id, "host_id": self.host_id,
            "country_code": self.country, "geolocation": f"Somewhere, {self.country}",
            "actual_status": actual, "intended_status": intended,
            "cur_state": "running" if intended == "running" else "stopped",
            "dph_base": base, "dph_total": base + self.storage,
            "storage_total_cost": self.storage, "disk_space": 100.0,
            "storage_cost": self.storage * 720 / 100.0, "is_bid": self.is_bid,
            "gpu_util": self.util if running else 0.0,
            "reliability2": self.reliability_at(t), "credit_balance": 1000.0,
            "start_date": self.born, "min_bid": base * 0.8 if self.is_bid else None,
        }

    def reliability_at(self, t: datetime) -> float:
        dropped = any(status in ("offline", "unknown") and s <= t
                      for s, _, status, _ in self.events)
        return round(self.reliability2 - (0.07 if dropped else 0.0), 4)


def scenario_specs(start: datetime = START) -> list[Spec]:
    """The scenario's instances, its events placed relative to `start` (a midnight UTC)."""
    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return start + timedelta(days=day, hours=hour, minutes=minute)

    return [
        Spec(101, "train-llm", "RTX 4090", 2, 5001, 7001, "US", 0.80, 0.02, util=0.9,
             born=start),
        Spec(102, "inference", "A100 SXM4", 1, 5002, 7002, "DE", 0.90, 0.03, is_bid=True,
             util=0.6, price_steps=[(at(1, 12), 1.10)], born=start),
        Spec(103, "notebook", "RTX 3090", 1, 5003, 7003, "NO", 0.25, 0.01, util=0.01,
             events=[(at(0, 18), at(1, 9), "stopped", "stopped")], born=start),
        Spec(104, "train-llm", "H100 SXM", 8, 5004, 7004, "US", 16.0, 0.15, util=0.95,
             reliability2=0.97, born=start,
             events=[(at(2, 2), at(2, 4), "offline", "running"),
                     (at(3, 10), at(3, 10, 30), "unknown", "running")]),
        Spec(105, None, "RTX 4090", 1, 5001, 7001, "US", 0.40, 0.01, util=0.01,
             born=at(0, 6),
             events=[(at(0, 6), at(0, 6, 15), None, "running"),
                     (at(0, 6, 15), at(0, 6, 30), "created", "running"),
                     (at(0, 6, 30), at(0, 7), "loading", "running")]),
        Spec(106, "batch", "RTX 3090", 4, 5005, 7005, "CA", 1.00, 0.04, util=0.7,
             destroyed=at(3, 0), born=start,
             events=[(at(2, 20), at(2, 21), "exited", "running")]),
        # never ran: no status, then offline until destroyed (it has no time to running)
        Spec(107, "never-ran", "RTX 3090", 1, 5007, 7007, "NL", 0.30, 0.01,
             born=at(1, 3), destroyed=at(1, 8),
             events=[(at(1, 3), at(1, 3, 15), None, "running"),
                     (at(1, 3, 15), at(1, 8), "offline", "running")]),
        Spec(201, "lab-exp", "RTX 4090", 1, 5006, 7006, "FR", 0.40, 0.01, account="lab",
             born=start),
    ]


def in_collection_gap(t: datetime, start: datetime = START) -> bool:
    """The collector was down for two hours on the last day (past the 30-minute cap)."""
    return start + timedelta(days=4, hours=10) <= t < start + timedelta(days=4, hours=12)


def snapshot_times(start: datetime = START, days: int = DAYS) -> list[datetime]:
    """Every successful collection of the scenario (both accounts are collected together)."""
    times, t, end = [], start, start + timedelta(days=days)
    while t < end:
        if not in_collection_gap(t, start):
            times.append(t)
        t += CADENCE
    return times


def scenario_history(home: Path, days: int = DAYS, start: datetime = START) -> list[Spec]:
    """Write the scenario's Parquet history under `home`; returns its instances."""
    specs = scenario_specs(start)
    writer = HistoryWriter(home)
    for t in snapshot_times(start, days):
        for account in ("main", "lab"):
            records = [r for s in specs if s.account == account
                       and (r := s.record(t)) is not None]
            writer.snapshot(account, t, records)
    writer.write()
    return specs


# --- realistic data from the simulator's fleet model ------------------------------------


def fleet_history(home: Path, *, end: datetime, days: int = 7, size: int = 40,
                  seed: int = 7) -> None:
    """`days` of 15-minute snapshots of the seeded FleetModel, flattened like collection."""
    from pipeline.core.secrets import scrub
    from pipeline.landing.flatten import flatten
    from pipeline.sim.fleet import FleetModel

    model = FleetModel(seed=seed, size=size)
    writer = HistoryWriter(home)
    t = end - timedelta(days=days)
    while t < end:
        result = flatten([scrub(r) for r in model.clean_records_at(t)], "x", t)
        writer.snapshot("default", t, [
            {k: v for k, v in row.items() if k not in ("snapshot_id", "snapshot_at",
                                                        "quarantined_values")}
            for row in result.table.to_pylist()])
        t += CADENCE
    writer.write()


# --- building ---------------------------------------------------------------------------


def build_warehouse(home: Path) -> Path:
    """The real warehouse build over the history under `home`."""
    build_at_cadence(home, full=True)
    return Path(home) / "warehouse.duckdb"


def delete_model_files(home: Path, model: str) -> int:
    """Delete a daily model's Parquet files (a damaged or half-cleaned home); returns how
    many were deleted."""
    files = sorted((Path(home) / dataset("models").folder / model).rglob("*.parquet"))
    for file in files:
        file.unlink()
    return len(files)


def query(home: Path, sql: str, params: list | dict | None = None) -> list[tuple]:
    """The warehouse's own answer, through a separate read-only connection."""
    import duckdb

    con = duckdb.connect(str(Path(home) / "warehouse.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def scenario_home(tmp_path_factory, name: str, start: datetime = START) -> Path:
    """A data home holding the scenario history and a warehouse built from it."""
    path = tmp_path_factory.mktemp(name) / "home"
    path.mkdir()
    scenario_history(path, start=start)
    build_warehouse(path)
    return path
