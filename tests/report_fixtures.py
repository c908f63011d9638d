"""Warehouses for the report and FOCUS tests, built from Parquet history.

The history is written in the layout described in README.md (hive-partitioned
`instance_snapshots` with `pipeline.schema.SNAPSHOT_SCHEMA`, plus the snapshot log), then
the real `pipeline.warehouse.build` turns it into the analyst tables, so the reports are
checked against the warehouse the product ships, not against a stand-in.

`scenario_history` is small and hand-made: every feature a report shows happens in it at
a known time (a bid price change, a stop and restart, an outage, a slow start, an idle
GPU, a destroyed instance, a collection gap, a second account). `fleet_history` is the
simulator's seeded FleetModel, for realistic screenshots.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.schema import SCHEMA_VERSION, SNAPSHOT_SCHEMA, TIMESTAMP

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
        folder = (self.home / "parquet" / dataset / f"account={account}"
                  / f"snapshot_date={day.isoformat()}")
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "part-0.parquet", compression="zstd")


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


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return START + timedelta(days=day, hours=hour, minutes=minute)


def scenario_specs() -> list[Spec]:
    return [
        Spec(101, "train-llm", "RTX 4090", 2, 5001, 7001, "US", 0.80, 0.02, util=0.9),
        Spec(102, "inference", "A100 SXM4", 1, 5002, 7002, "DE", 0.90, 0.03, is_bid=True,
             util=0.6, price_steps=[(_at(1, 12), 1.10)]),
        Spec(103, "notebook", "RTX 3090", 1, 5003, 7003, "NO", 0.25, 0.01, util=0.01,
             events=[(_at(0, 18), _at(1, 9), "stopped", "stopped")]),
        Spec(104, "train-llm", "H100 SXM", 8, 5004, 7004, "US", 16.0, 0.15, util=0.95,
             reliability2=0.97,
             events=[(_at(2, 2), _at(2, 4), "offline", "running"),
                     (_at(3, 10), _at(3, 10, 30), "unknown", "running")]),
        Spec(105, None, "RTX 4090", 1, 5001, 7001, "US", 0.40, 0.01, util=0.01,
             born=_at(0, 6),
             events=[(_at(0, 6), _at(0, 6, 15), None, "running"),
                     (_at(0, 6, 15), _at(0, 6, 30), "created", "running"),
                     (_at(0, 6, 30), _at(0, 7), "loading", "running")]),
        Spec(106, "batch", "RTX 3090", 4, 5005, 7005, "CA", 1.00, 0.04, util=0.7,
             destroyed=_at(3, 0),
             events=[(_at(2, 20), _at(2, 21), "exited", "running")]),
        Spec(201, "lab-exp", "RTX 4090", 1, 5006, 7006, "FR", 0.40, 0.01, account="lab"),
    ]


def in_collection_gap(t: datetime) -> bool:
    """The collector was down for two hours on the last day (past the 30-minute cap)."""
    return _at(4, 10) <= t < _at(4, 12)


def scenario_history(home: Path, days: int = DAYS) -> list[Spec]:
    """Write the scenario's Parquet history under `home`; returns its instances."""
    specs = scenario_specs()
    writer = HistoryWriter(home)
    t, end = START, START + timedelta(days=days)
    while t < end:
        if not in_collection_gap(t):
            for account in ("main", "lab"):
                records = [r for s in specs if s.account == account
                           and (r := s.record(t)) is not None]
                writer.snapshot(account, t, records)
        t += CADENCE
    writer.write()
    return specs


# --- realistic data from the simulator's fleet model ------------------------------------


def fleet_history(home: Path, *, end: datetime, days: int = 7, size: int = 40,
                  seed: int = 7) -> None:
    """`days` of 15-minute snapshots of the seeded FleetModel, flattened like collection."""
    from pipeline.flatten import flatten
    from pipeline.fleet import FleetModel
    from pipeline.secrets import scrub

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
    from pipeline import warehouse

    warehouse.build(home, cadence_minutes=15, full=True)
    return Path(home) / "warehouse.duckdb"


def delete_model_files(home: Path, model: str) -> int:
    """Delete a daily model's Parquet files (a damaged or half-cleaned home); returns how
    many were deleted."""
    files = sorted((Path(home) / "parquet" / "models" / model).rglob("*.parquet"))
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


# --- expected figures, from the warehouse's own tables --------------------------------


def _acct(account: str | None) -> tuple[str, list]:
    return ("", []) if account is None else (" AND account = ?", [account])


def _one(home: Path, sql: str, params: list) -> float:
    return query(home, sql, params)[0][0]


def expected_cost(home: Path, d0: date, d1: date, account: str | None) -> dict[str, float]:
    where, extra = _acct(account)
    p = [d0, d1, *extra]
    spend = _one(home, f"SELECT sum(total_cost) FROM cost_daily WHERE day BETWEEN ? AND ?{where}",
                 p)
    gpu_hours = _one(home, f"SELECT sum(gpu_hours) FROM cost_daily "
                           f"WHERE day BETWEEN ? AND ?{where}", p)
    idle = _one(home, f"SELECT coalesce(sum(idle_cost), 0) FROM idle_spend "
                      f"WHERE day BETWEEN ? AND ?{where}", p)
    mtd = _one(home, f"SELECT sum(total_cost) FROM cost_daily WHERE day BETWEEN ? AND ?{where}",
               [d1.replace(day=1), d1, *extra])
    burn, as_of = query(home, f"SELECT sum(burn_rate_per_hour), max(snapshot_at) FROM fleet_now "
                              f"WHERE true{where}", extra)[0]
    month_end = datetime(d1.year, d1.month + 1, 1, tzinfo=UTC)
    data_end = min(datetime(d1.year, d1.month, d1.day, tzinfo=UTC) + timedelta(days=1), as_of)
    return {
        "window_spend": spend, "month_to_date": mtd, "idle_spend": idle,
        "cost_per_gpu_hour": spend / gpu_hours, "burn_rate_per_hour": burn,
        "projected_month": mtd + burn * (month_end - data_end).total_seconds() / 3600,
    }


def expected_reliability(home: Path, d0: date, d1: date,
                         account: str | None) -> dict[str, float]:
    where, extra = _acct(account)
    up, down = query(home, f"SELECT sum(up_hours), sum(down_hours) FROM reliability_daily "
                           f"WHERE day BETWEEN ? AND ?{where}", [d0, d1, *extra])[0]
    t0 = datetime(d0.year, d0.month, d0.day, tzinfo=UTC)
    t1 = datetime(d1.year, d1.month, d1.day, tzinfo=UTC) + timedelta(days=1)
    incidents = query(home, f"SELECT hours FROM incidents WHERE started_at < ? "
                            f"AND coalesce(ended_at, ?) > ?{where}", [t1, t1, t0, *extra])
    starts = sorted(r[0] for r in query(
        home, f"SELECT starting_hours FROM reliability_by_instance WHERE first_seen >= ? "
              f"AND first_seen < ? AND starting_hours > 0{where}", [t0, t1, *extra]))
    return {
        "availability": up / (up + down), "down_hours": down,
        "incidents": len(incidents),
        "mttr_hours": sum(r[0] for r in incidents) / len(incidents) if incidents else None,
        "coverage": _coverage(home, t0, t1, account),
        "time_to_running_median": _median(starts),
    }


def _coverage(home: Path, t0: datetime, t1: datetime, account: str | None) -> float:
    """Observed hours / hours each instance spanned in the window, in plain Python."""
    where, extra = _acct(account)
    spans: dict[tuple, list[tuple[datetime, datetime]]] = {}
    for acct, iid, s, e in query(home, "SELECT account, instance_id, interval_start, interval_end "
                                       f"FROM instance_intervals WHERE true{where}", extra):
        s, e = max(s, t0), min(e, t1)
        if e > s:
            spans.setdefault((acct, iid), []).append((s, e))
    covered = sum((e - s).total_seconds() for v in spans.values() for s, e in v)
    span = sum((max(e for _, e in v) - min(s for s, _ in v)).total_seconds()
               for v in spans.values())
    return covered / span


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def scenario_home(tmp_path_factory, name: str) -> Path:
    """A data home holding the scenario history and a warehouse built from it."""
    path = tmp_path_factory.mktemp(name) / "home"
    path.mkdir()
    scenario_history(path)
    build_warehouse(path)
    return path
