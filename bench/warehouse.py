"""Warehouse benchmark: a generated year of 15-minute snapshots, built full and incrementally.

Why generate with numpy/pyarrow instead of going through the collector: the point is the
cost of the SQL models on a realistic volume (about 35 million instance snapshots for
1,000 instances over a year), not of collection, which has its own benchmark. The data
lands in the real Parquet layout and is cached in the bench directory, so reruns skip it.

Usage: `python -m bench warehouse [--instances 1000 --days 365] [--dir DIR]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.progress import is_interactive
from pipeline.storage.schema import SNAPSHOT_LOG_SCHEMA, SNAPSHOT_SCHEMA
from pipeline.warehouse import build as warehouse
from pipeline.warehouse import query

ACCOUNT = "bench"
START = date(2024, 1, 1)
CADENCE_MINUTES = 15  # of the generated snapshots, so the builds use it too
PER_DAY = 24 * 60 // CADENCE_MINUTES
# Issue 11's targets (full_s is for the full-size year of 1,000 instances).
GOALS = {"full_s": 40.0, "incremental_s": 2.0, "memory_gb": 2.0, "full_over_reference": 3.0,
         "flat": 1.25}  # the scheduled build's cost at a year over day one's: "flat"
GPUS = [  # name, $/h per GPU (typical market prices)
    ("RTX 4090", 0.40), ("RTX 3090", 0.22), ("A100 SXM4", 1.10), ("H100 SXM", 2.40),
    ("RTX A6000", 0.50), ("L40S", 0.85),
]
COUNTRIES = ["US", "DE", "SE", "CA", "NO", "FR", "JP", "PL"]
LABELS = ["training", "inference", "research", "batch", "dev", None]
DEFAULT_DIR = Path(os.environ.get("VAST_PIPELINE_HOME", "data")) / "bench" / "warehouse"


# --------------------------------------------------------------------------- generation


@dataclass
class Fleet:
    """Per-instance constants and the state that carries across days (prices, lifetimes)."""

    ids: np.ndarray
    machine: np.ndarray
    host: np.ndarray
    gpu: np.ndarray
    num_gpus: np.ndarray
    label: np.ndarray
    country: np.ndarray
    is_bid: np.ndarray
    disk: np.ndarray
    idle: np.ndarray
    born: np.ndarray  # first snapshot index (global)
    dies: np.ndarray  # first snapshot index not listed any more
    price: np.ndarray  # dph_base now
    host_rel: np.ndarray


def make_fleet(n: int, days: int, seed: int = 7) -> Fleet:
    """A fleet where most instances live all year, some are created or destroyed mid-year."""
    rng = np.random.default_rng(seed)
    total = (days + 1) * PER_DAY
    hosts = max(1, n // 4)
    host = rng.integers(0, hosts, n)
    gpu = rng.integers(0, len(GPUS), n)
    num_gpus = rng.choice([1, 1, 1, 2, 4, 8], n)
    born = np.where(rng.random(n) < 0.92, 0, rng.integers(0, total, n))
    dies = np.where(rng.random(n) < 0.06, born + rng.integers(PER_DAY, total, n), total + 1)
    base = np.array([p for _, p in GPUS])[gpu] * num_gpus
    return Fleet(
        ids=np.arange(10_000, 10_000 + n, dtype=np.int64),
        machine=(host * 3 + rng.integers(0, 3, n)).astype(np.int64) + 50_000,
        host=host.astype(np.int64) + 900,
        gpu=gpu, num_gpus=num_gpus.astype(np.int64),
        label=rng.integers(0, len(LABELS), n), country=rng.integers(0, len(COUNTRIES), n),
        is_bid=rng.random(n) < 0.3, disk=rng.choice([32.0, 64.0, 100.0, 250.0], n),
        idle=rng.random(n) < 0.08, born=born, dies=dies,
        price=np.round(base * rng.uniform(0.9, 1.2, n), 4),
        host_rel=rng.uniform(0.9, 0.999, hosts),
    )


def _blocks(rng: np.random.Generator, n: int, rate: float, lo: int, hi: int) -> np.ndarray:
    """(n, PER_DAY) mask of random runs: each row gets a run with probability `rate`."""
    mask = np.zeros((n, PER_DAY), dtype=bool)
    hit = np.flatnonzero(rng.random(n) < rate)
    starts = rng.integers(0, PER_DAY, hit.size)
    lengths = rng.integers(lo, hi + 1, hit.size)
    for row, s, ln in zip(hit, starts, lengths, strict=True):
        mask[row, s:s + ln] = True
    return mask


STATUSES = ["running", "exited", "offline", "unknown", "loading"]
INTENDED = ["running", "stopped"]


def _statuses(rng: np.random.Generator, fleet: Fleet, slot0: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Actual and intended status codes (indexes into STATUSES / INTENDED) for one day:
    running, user stops, host outages, short unknown spells, loading after creation."""
    n = fleet.ids.size
    actual = np.zeros((n, PER_DAY), dtype=np.int8)
    intended = np.zeros((n, PER_DAY), dtype=np.int8)
    stop = _blocks(rng, n, 0.06, 4, 60)
    actual[stop], intended[stop] = 1, 1
    host_down = _blocks(rng, int(fleet.host.max()) + 1 - 900, 0.02, 1, 10)[fleet.host - 900]
    unknown = _blocks(rng, n, 0.01, 1, 3)
    actual[host_down & ~stop] = 2
    actual[unknown & ~stop & ~host_down] = 3
    slots = slot0 + np.arange(PER_DAY)
    age = slots[None, :] - fleet.born[:, None]
    actual[(age >= 0) & (age < 3)] = 4
    return actual, intended


def _strings(codes: np.ndarray, values: Sequence[str | None]) -> pa.Array:
    """Strings from codes via a dictionary (fast: no Python object per row)."""
    dictionary = pa.array(list(values), pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), dictionary).cast(
        pa.string())


def _null_columns(n: int, skip: set[str]) -> dict[str, pa.Array]:
    return {f.name: pa.nulls(n, f.type) for f in SNAPSHOT_SCHEMA if f.name not in skip}


def generate_day(fleet: Fleet, day_index: int, seed: int) -> tuple[pa.Table, list[datetime]]:
    """One day's instance snapshots (and the snapshot times, gaps removed)."""
    rng = np.random.default_rng((seed, day_index))
    slot0 = day_index * PER_DAY
    day0 = datetime.combine(START + timedelta(days=day_index), datetime.min.time(), UTC)
    times = [day0 + timedelta(minutes=CADENCE_MINUTES * i) for i in range(PER_DAY)]
    keep = np.ones(PER_DAY, dtype=bool)
    if rng.random() < 0.05:  # a collection gap: the collector was down for a while
        s = int(rng.integers(0, PER_DAY - 12))
        keep[s:s + int(rng.integers(3, 12))] = False
    slots = slot0 + np.arange(PER_DAY)
    present = (slots[None, :] >= fleet.born[:, None]) & (slots[None, :] < fleet.dies[:, None])
    actual, intended = _statuses(rng, fleet, slot0)
    # bid instances reprice now and then, at a random snapshot of the day
    price = np.repeat(fleet.price[:, None], PER_DAY, axis=1)
    change = np.flatnonzero(fleet.is_bid & (rng.random(fleet.ids.size) < 0.1))
    for row in change:
        at = int(rng.integers(0, PER_DAY))
        fleet.price[row] = round(fleet.price[row] * float(rng.uniform(0.8, 1.25)), 4)
        price[row, at:] = fleet.price[row]
    util = np.where(fleet.idle[:, None], rng.uniform(0, 2, (fleet.ids.size, PER_DAY)),
                    rng.uniform(20, 100, (fleet.ids.size, PER_DAY)))
    mask = present & keep[None, :]
    rows, cols = np.nonzero(mask)
    n = rows.size
    storage = np.round(fleet.disk * 0.15 / 720, 6)[rows]
    micros = int(day0.timestamp()) * 1_000_000 + cols.astype(np.int64) * 15 * 60 * 1_000_000
    snap_ids = [f"{ACCOUNT}-{t:%Y%m%dT%H%M}" for t in times]
    data: dict[str, Any] = {
        "snapshot_id": _strings(cols, snap_ids),
        "snapshot_at": pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "id": pa.array(fleet.ids[rows]),
        "machine_id": pa.array(fleet.machine[rows]),
        "host_id": pa.array(fleet.host[rows]),
        "num_gpus": pa.array(fleet.num_gpus[rows]),
        "gpu_util": pa.array(util[rows, cols]),
        "disk_space": pa.array(fleet.disk[rows]),
        "dph_base": pa.array(price[rows, cols]),
        "dph_total": pa.array(price[rows, cols] + storage),
        "storage_total_cost": pa.array(storage),
        "reliability2": pa.array(fleet.host_rel[fleet.host - 900][rows]),
        "credit_balance": pa.array(np.full(n, 5000.0)),
        "actual_status": _strings(actual[rows, cols], STATUSES),
        "intended_status": _strings(intended[rows, cols], INTENDED),
        "label": _strings(fleet.label[rows], LABELS),
        "gpu_name": _strings(fleet.gpu[rows], [g for g, _ in GPUS]),
        "country_code": _strings(fleet.country[rows], COUNTRIES),
        "is_bid": pa.array(fleet.is_bid[rows]),
        "quarantined_values": pa.array(np.zeros(n, dtype=np.int32)),
    }
    data.update(_null_columns(n, set(data)))
    table = pa.table({f.name: data[f.name] for f in SNAPSHOT_SCHEMA}, schema=SNAPSHOT_SCHEMA)
    return table, [t for t, k in zip(times, keep, strict=True) if k]


def _write_day(root: Path, fleet: Fleet, day_index: int, seed: int) -> int:
    table, times = generate_day(fleet, day_index, seed)
    day = (START + timedelta(days=day_index)).isoformat()
    inst = root / "instance_snapshots" / f"account={ACCOUNT}" / f"snapshot_date={day}"
    logs = root / "snapshots" / f"account={ACCOUNT}" / f"snapshot_date={day}"
    inst.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, inst / "part-0.parquet", compression="zstd")
    step_us = CADENCE_MINUTES * 60_000_000
    per_slot = np.bincount(
        (table.column("snapshot_at").cast(pa.int64()).to_numpy() // step_us) % PER_DAY,
        minlength=PER_DAY)
    counts = {t: int(per_slot[(t.hour * 60 + t.minute) // CADENCE_MINUTES]) for t in times}
    log = pa.table({
        "snapshot_id": [f"{ACCOUNT}-{t:%Y%m%dT%H%M}" for t in times],
        "snapshot_at": pa.array(times, pa.timestamp("us", tz="UTC")),
        "instances": pa.array([counts.get(t, 0) for t in times], pa.int64()),
        "quarantined_records": pa.array([0] * len(times), pa.int64()),
        "quarantined_values": pa.array([0] * len(times), pa.int64()),
        "pages": pa.array([40] * len(times), pa.int64()),
        "new_fields": pa.array([[] for _ in times], pa.list_(pa.string())),
        "schema_version": pa.array([1] * len(times), pa.int32()),
    }, schema=SNAPSHOT_LOG_SCHEMA)
    pq.write_table(log, logs / "part-0.parquet")
    return table.num_rows


def ensure_cache(cache: Path, instances: int, days: int, seed: int, say: Callable[[str], None]
                 ) -> int:
    """Generate days 0..days (the last one is the 'one more day' of the incremental run)
    unless the cache already holds them. Returns the number of rows of the first `days`."""
    done = cache / "COMPLETE"
    if done.exists():
        say(f"using cached data in {cache}")
        return int(done.read_text())
    shutil.rmtree(cache, ignore_errors=True)
    fleet = make_fleet(instances, days, seed)
    rows, started = 0, time.monotonic()
    for d in range(days + 1):
        n = _write_day(cache / "parquet", fleet, d, seed)
        rows += n if d < days else 0
        if d % 10 == 0 or d == days:
            rate = rows / max(time.monotonic() - started, 1e-9)
            say(f"generating day {d + 1}/{days + 1}: {rows:,} rows ({rate:,.0f} rows/s)")
    done.write_text(str(rows))
    return rows


def _link_days(cache: Path, home: Path, days: Sequence[int]) -> None:
    """Expose cached partitions in the run's home by symlink (the cache stays pristine)."""
    for table in ("instance_snapshots", "snapshots"):
        for d in days:
            name = f"snapshot_date={(START + timedelta(days=d)).isoformat()}"
            src = cache / "parquet" / table / f"account={ACCOUNT}" / name
            dst = home / "parquet" / table / f"account={ACCOUNT}" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src, target_is_directory=True)


# --------------------------------------------------------------------------- measuring


class PeakRss:
    """Samples this process's RSS in a thread (DuckDB allocates outside Python's view)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


REPORT_QUERIES: dict[str, str] = {
    "cost by day and GPU (7 d)": (
        "SELECT day, gpu_name, sum(total_cost) FROM estimated_cost_daily "
        "WHERE day > (SELECT max(day) FROM estimated_cost_daily) - 7 GROUP BY ALL ORDER BY ALL"),
    "month to date": (
        "SELECT sum(total_cost), sum(gpu_cost), sum(storage_cost), sum(gpu_hours) "
        "FROM estimated_cost_daily "
        "WHERE day >= date_trunc('month', (SELECT max(day) FROM estimated_cost_daily))"),
    "top instances (7 d)": (
        "SELECT instance_id, label, gpu_name, sum(instance_hours), sum(total_cost), "
        "sum(total_cost) / nullif(sum(gpu_hours), 0) FROM estimated_cost_daily "
        "WHERE day > (SELECT max(day) FROM estimated_cost_daily) - 7 GROUP BY ALL "
        "ORDER BY 5 DESC LIMIT 20"),
    "idle spend (7 d)": (
        "SELECT day, sum(stopped_storage_cost), sum(idle_gpu_cost) FROM idle_spend "
        "WHERE day > (SELECT max(day) FROM idle_spend) - 7 GROUP BY day ORDER BY day"),
    "burn rate now": (
        "SELECT account, burn_rate_per_hour, burn_per_month, runway_days FROM account_now"),
    "price changes (7 d)": (
        "SELECT * FROM price_changes WHERE day > (SELECT max(day) FROM price_changes) - 7"),
    "availability by instance (7 d)": (
        "SELECT instance_id, sum(up_hours) / nullif(sum(up_hours) + sum(down_hours), 0), "
        "sum(observed_hours) FROM reliability_daily "
        "WHERE day > (SELECT max(day) FROM reliability_daily) - 7 GROUP BY 1"),
    "incidents (7 d)": (
        "SELECT * FROM incidents WHERE started_at > (SELECT max(ended_at) FROM incidents) "
        "- INTERVAL 7 DAY ORDER BY started_at"),
    "worst hosts": (
        "SELECT * FROM reliability_alltime_by_host ORDER BY availability NULLS LAST LIMIT 20"),
    "intervals of one day (FOCUS rows)": (
        "SELECT count(*), sum(total_cost) FROM instance_intervals "
        "WHERE day = (SELECT max(day) FROM estimated_cost_daily)"),
}


# The floor any interval model pays: read the history once, find each snapshot's next
# account snapshot with lead(), write one row per instance snapshot to Parquet.
REFERENCE_SQL = """
COPY (
    with timeline as (
        select account, snapshot_at,
            lead(snapshot_at) over (partition by account order by snapshot_at) as next_at
        from read_parquet({snapshots}, hive_partitioning = true)
    )
    select s.account, s.snapshot_date as day, s.id as instance_id,
        s.snapshot_at as interval_start, t.next_at as interval_end,
        (epoch(t.next_at) - epoch(s.snapshot_at)) / 3600.0 as hours,
        s.actual_status, s.intended_status, s.dph_base, s.storage_cost
    from read_parquet({instance_snapshots}, hive_partitioning = true) as s
    inner join timeline as t on s.account = t.account and s.snapshot_at = t.snapshot_at
    where t.next_at is not null
) TO {target} (FORMAT parquet, COMPRESSION zstd)
"""


def reference_pass(home: Path, memory_limit: str) -> tuple[float, float]:
    """Wall and CPU seconds of `REFERENCE_SQL` on `home`'s Parquet, the build's settings."""
    import duckdb

    def glob(table: str) -> str:
        return "'" + str(home / "parquet" / table / "*" / "*" / "*.parquet") + "'"

    target = home / "reference_intervals.parquet"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    sql = REFERENCE_SQL.format(snapshots=glob("snapshots"),
                               instance_snapshots=glob("instance_snapshots"),
                               target="'" + str(target) + "'")
    started, cpu = time.perf_counter(), time.process_time()
    con.execute(sql)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    con.close()
    target.unlink()
    return seconds, cpu


def _timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _cpu_timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds (all threads): on a shared machine CPU time is the steadier one."""
    c0 = time.process_time()
    wall, out = _timed(fn)
    return wall, time.process_time() - c0, out


def run(instances: int, days: int, bench_dir: Path, repeat: int, seed: int,
        memory_limit: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Generate (or reuse) the data, then time full, incremental and report queries."""
    cache = bench_dir / f"cache-v2-{instances}x{days}-s{seed}"
    rows = ensure_cache(cache, instances, days, seed, say)
    home = bench_dir / "run"
    full_times, inc_times, full_cpu, inc_cpu, ref_times, ref_cpu = [], [], [], [], [], []
    model_times: list[dict[str, float]] = []
    inc_model_times: list[dict[str, float]] = []

    def build(full: bool) -> warehouse.BuildResult:
        return warehouse.build(home, cadence_minutes=CADENCE_MINUTES, full=full,
                               memory_limit=memory_limit, progress=lambda m: say(f"  {m}"))

    with PeakRss() as rss:
        for i in range(repeat):
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            _link_days(cache, home, range(days))
            say(f"reference pass {i + 1}/{repeat} (lead() intervals to Parquet) ...")
            wall, cpu = reference_pass(home, memory_limit)
            ref_times.append(wall)
            ref_cpu.append(cpu)
            say(f"  {wall:.1f} s ({cpu:.1f} s CPU)")
            say(f"full build {i + 1}/{repeat} of {rows:,} snapshot rows ...")
            t, cpu, res = _cpu_timed(lambda: build(full=True))
            full_times.append(t)
            full_cpu.append(cpu)
            model_times.append(res.model_seconds)
            say(f"  {t:.1f} s ({cpu:.1f} s CPU)")
            _link_days(cache, home, [days])
            say(f"incremental build {i + 1}/{repeat} after one more day ...")
            t, cpu, res = _cpu_timed(lambda: build(full=False))
            inc_times.append(t)
            inc_cpu.append(cpu)
            inc_model_times.append(res.model_seconds)
            say(f"  {t:.1f} s ({cpu:.1f} s CPU, recomputed {res.days_recomputed} days)")
        day_one = [_day_one_incremental(cache, bench_dir / "day-one", memory_limit)
                   for _ in range(repeat)]
        queries = {}
        for name, sql in REPORT_QUERIES.items():
            queries[name], _ = _timed(lambda sql=sql: query.query(home, sql), repeat=3)
    model_bytes = sum(f.stat().st_size for f in (home / "parquet" / "models").rglob("*.parquet"))
    return {
        "rows": rows, "instances": instances, "days": days,
        "full_s": statistics.median(full_times), "incremental_s": statistics.median(inc_times),
        "day_one_incremental_s": statistics.median(day_one),
        "reference_s": statistics.median(ref_times),
        "reference_cpu_s": statistics.median(ref_cpu),
        "ratios": [f / r for f, r in zip(full_times, ref_times, strict=True)],
        "cpu_ratios": [f / r for f, r in zip(full_cpu, ref_cpu, strict=True)],
        "full_runs": full_times, "incremental_runs": inc_times,
        "full_cpu_s": statistics.median(full_cpu), "incremental_cpu_s": statistics.median(inc_cpu),
        "load": os.getloadavg()[0],
        "model_s": _median_per_model(model_times),
        "incremental_model_s": _median_per_model(inc_model_times),
        "queries": queries, "peak_rss_gb": rss.peak / 1e9, "model_bytes": model_bytes,
        "db_bytes": (home / warehouse.DB_NAME).stat().st_size,
    }


def _day_one_incremental(cache: Path, home: Path, memory_limit: str) -> float:
    """The same incremental build (the second of two days) on a home of two days: what
    the scheduled build costs on day one, to compare with a year's."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    _link_days(cache, home, [0])
    warehouse.build(home, cadence_minutes=CADENCE_MINUTES, memory_limit=memory_limit)
    _link_days(cache, home, [1])
    seconds, _ = _timed(lambda: warehouse.build(
        home, cadence_minutes=CADENCE_MINUTES, memory_limit=memory_limit))
    return seconds


def _median_per_model(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def _span(values: Sequence[float], unit: str) -> str:
    return f"{min(values):.1f}-{max(values):.1f}{unit}" if len(values) > 1 else "one run"


def _model_shares(seconds: dict[str, float], total: float, top: int = 5) -> str:
    """The slowest models' wall seconds, the rest summed (what to optimize first)."""
    ranked = sorted(seconds.items(), key=lambda item: -item[1])
    parts = [f"{name} {s:.1f} s" for name, s in ranked[:top]]
    rest = sum(s for _, s in ranked[top:])
    setup = total - sum(seconds.values())
    return ", ".join([*parts, f"{len(ranked) - top} other models {rest:.1f} s",
                      f"setup and swap {setup:.1f} s"])


def render(res: dict[str, Any]) -> str:
    """The figures beside their goals."""

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    share = res["instances"] * res["days"] / (1000 * 365)  # the goal is for a full year
    flat = res["incremental_s"] / res["day_one_incremental_s"]
    full_goal = GOALS["full_s"] * share
    scaled = "" if share == 1 else f"; goal scaled from {GOALS['full_s']:.0f} s for 1,000 x 365"
    lines = [
        f"warehouse benchmark: {res['instances']:,} instances x {res['days']} days = "
        f"{res['rows']:,} instance snapshots",
        f"  full build           {res['full_s']:8.1f} s   goal < {full_goal:.1f} s   "
        f"{verdict(res['full_s'] < full_goal)}   ({res['full_cpu_s']:.0f} s CPU{scaled})",
        f"  incremental (+1 day) {res['incremental_s']:8.1f} s   goal < "
        f"{GOALS['incremental_s']:.1f} s  "
        f"{verdict(res['incremental_s'] < GOALS['incremental_s'])}   "
        f"({res['incremental_cpu_s']:.1f} s CPU)",
        f"  incremental, these {res['days']} days / day one: {flat:.2f}x   target <= "
        f"{GOALS['flat']:.2f}x (flat)   {verdict(flat <= GOALS['flat'])}   "
        f"(day one {res['day_one_incremental_s']:.2f} s: the same build on a 2-day home)",
        f"  reference pass       {res['reference_s']:8.1f} s   "
        f"({res['reference_cpu_s']:.1f} s CPU; one lead() query writing the interval table "
        "to Parquet, same data, same run)",
        f"  full build / reference pass: {statistics.median(res['ratios']):.1f}x   target <= "
        f"{GOALS['full_over_reference']:.1f}x   "
        f"{verdict(statistics.median(res['ratios']) <= GOALS['full_over_reference'])}   "
        f"(runs {_span(res['ratios'], 'x')}; CPU time "
        f"{statistics.median(res['cpu_ratios']):.1f}x)",
        f"  peak memory (RSS)    {res['peak_rss_gb']:8.2f} GB  goal < {GOALS['memory_gb']:.0f} GB"
        f"    {verdict(res['peak_rss_gb'] < GOALS['memory_gb'])}",
        f"  where the full build's time goes: {_model_shares(res['model_s'], res['full_s'])}",
        "  where the incremental build's time goes: "
        f"{_model_shares(res['incremental_model_s'], res['incremental_s'])}",
        f"  model Parquet {res['model_bytes'] / 1e6:,.0f} MB, warehouse.duckdb "
        f"{res['db_bytes'] / 1e6:,.1f} MB",
        f"  machine: {os.cpu_count()} cores, load average {res['load']:.1f} at the end",
        "  report queries (median of 3):",
    ]
    lines += [f"    {name:<36} {t * 1000:8.1f} ms" for name, t in res["queries"].items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m bench warehouse`."""
    parser = argparse.ArgumentParser(prog="python -m bench warehouse", description=__doc__)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help="where generated data is cached and the run happens")
    parser.add_argument("--repeat", type=int, default=1, help="builds to take the median of")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory-limit", default=warehouse.DEFAULT_MEMORY_LIMIT,
                        help="DuckDB memory_limit for the builds")
    parser.add_argument("--scale", type=float,
                        help="fraction of the year to build (sets --days; 0.25 = 91 days)")
    args = parser.parse_args(argv)
    if args.scale is not None:
        args.days = max(2, round(365 * args.scale))
    if args.instances < 1 or args.days < 2:
        parser.error("need at least 1 instance and 2 days")

    def say(msg: str) -> None:  # progress on a terminal; quiet when piped
        if is_interactive():
            print(msg, file=sys.stderr, flush=True)

    res = run(args.instances, args.days, args.dir.resolve(), args.repeat, args.seed,
              args.memory_limit, say)
    print(render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
