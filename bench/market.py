"""Market benchmark: a synthetic year of hourly market snapshots beside a year of the fleet.

What it measures (issue 21's "Scale and speed"):
- the incremental build after one new market snapshot at a year (the newest market day's
  file gains its last snapshot, and the fleet one more day), against the same incremental
  build of the same fleet with no market at all: the market's extra cost (goal <= 0.5 s);
- the market models' share of a full build at a year (market_prices, paid_vs_market,
  market_history, savings_opportunities and the staging views) against a one-query
  reference pass over the same Parquet (quantiles per snapshot, GPU model and type into a
  table), as a ratio.
The data is generated with numpy/pyarrow in the registry's layout and schema (not through
the market's landing, which has its own figure) and cached under the bench folder, so
reruns skip generating it. Medians of `--repeat` runs.

Usage: `python -m bench market [--offers 5000 --days 365 --instances 200 --repeat 3]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.warehouse import CADENCE_MINUTES, GPUS, START, _link_days, ensure_cache
from pipeline.core.progress import is_interactive
from pipeline.storage.datasets import dataset
from pipeline.warehouse import build as warehouse

SNAPSHOTS_PER_DAY = 24  # hourly, `[market] cadence_minutes` = 60
GOALS = {"incremental_extra_s": 0.5}
MARKET_MODELS = ("market_offers", "market_snapshots", "market_prices", "paid_vs_market",
                 "market_history", "savings_opportunities")
DEFAULT_DIR = Path(os.environ.get("VAST_PIPELINE_HOME", "data")) / "bench" / "market"
REGIONS = ["Texas, US", "Oregon, US", "Bavaria, DE", "Ontario, CA", "Stockholm, SE",
           "Tokyo, JP", "Mazovia, PL", "Oslo, NO"]
REFERENCE_SQL = """
CREATE TABLE reference AS
SELECT snapshot_id, gpu_name, offer_type, count(*) AS offers, min(p) AS min_p,
       quantile_cont(p, [0.10, 0.25, 0.50, 0.75, 0.90]) AS quantiles
FROM (
    SELECT snapshot_id, gpu_name, offer_type,
           CASE WHEN offer_type = 'bid' THEN min_bid ELSE dph_base END / num_gpus AS p
    FROM read_parquet({glob}, hive_partitioning = true)
    WHERE num_gpus > 0
)
WHERE p IS NOT NULL
GROUP BY snapshot_id, gpu_name, offer_type
"""


# --------------------------------------------------------------------------- generation


def _machines(offers: int, seed: int) -> dict[str, np.ndarray]:
    """Each machine is listed twice per snapshot (on-demand and bid): offers / 2 machines."""
    rng = np.random.default_rng((seed, 1))
    m = max(1, offers // 2)
    gpu = rng.integers(0, len(GPUS), m)
    num = rng.choice([1, 1, 2, 4, 8], m)
    return {
        "machine": np.arange(100_000, 100_000 + m, dtype=np.int64),
        "host": rng.integers(0, max(1, m // 3), m).astype(np.int64) + 700_000,
        "gpu": gpu, "num": num.astype(np.int64),
        "base": np.array([p for _, p in GPUS])[gpu] * num * rng.uniform(0.7, 1.4, m),
        "storage": np.round(rng.uniform(0.05, 0.3, m), 4),
        "disk": rng.choice([50.0, 100.0, 250.0, 500.0, 1000.0], m),
        "rel": np.round(rng.uniform(0.85, 0.9999, m), 4),
        "verified": rng.random(m) < 0.7, "region": rng.integers(0, len(REGIONS), m),
    }


def _strings(codes: np.ndarray, values: Sequence[str]) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(codes, pa.int32()))


def generate_day(mk: dict[str, np.ndarray], day_index: int, seed: int,
                 snapshots: int = SNAPSHOTS_PER_DAY) -> tuple[pa.Table, pa.Table]:
    """(offers, log) of one day's first `snapshots` hourly market snapshots."""
    rng = np.random.default_rng((seed, 2, day_index))
    m = mk["machine"].size
    day0 = datetime.combine(START + timedelta(days=day_index), datetime.min.time(), UTC)
    hours = np.arange(snapshots)
    present = rng.random((snapshots, m)) > 0.1  # rented away this hour
    rhythm = 1 + 0.08 * np.sin(2 * np.pi * (hours[:, None] + mk["gpu"][None, :]) / 24)
    trend = 1 + 0.1 * np.sin(2 * np.pi * (day_index + 30 * mk["gpu"]) / 365)
    price = np.round(mk["base"][None, :] * rhythm * trend, 4)
    snap, idx = np.nonzero(present)
    n = snap.size
    ids = mk["machine"][idx] * 10 + (day_index // 7) % 10  # a new id every week
    base = price[snap, idx]
    micros = int(day0.timestamp()) * 1_000_000 + snap.astype(np.int64) * 3_600_000_000
    names = [f"market-{day0 + timedelta(hours=int(h)):%Y%m%dT%H%M}" for h in hours]
    one = {
        "snapshot_id": _strings(snap, names),
        "snapshot_at": pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "id": pa.array(ids), "machine_id": pa.array(mk["machine"][idx]),
        "host_id": pa.array(mk["host"][idx]),
        "gpu_name": _strings(mk["gpu"][idx], [g for g, _ in GPUS]),
        "num_gpus": pa.array(mk["num"][idx]), "dph_base": pa.array(base),
        "dph_total": pa.array(base + mk["storage"][idx] * 10 / 720),
        "storage_cost": pa.array(mk["storage"][idx]), "disk_space": pa.array(mk["disk"][idx]),
        "reliability": pa.array(mk["rel"][idx]),
        "verification": _strings(mk["verified"][idx].astype(np.int8),
                                 ["unverified", "verified"]),
        "geolocation": _strings(mk["region"][idx], REGIONS),
        "dlperf": pa.array(mk["num"][idx] * 25.0), "inet_down": pa.array(np.full(n, 900.0)),
        "inet_up": pa.array(np.full(n, 700.0)), "duration": pa.array(np.full(n, 2.6e6)),
        "rentable": pa.array(np.ones(n, dtype=bool)),
        "quarantined_values": pa.array(np.zeros(n, dtype=np.int32)),
    }
    schema = dataset("market_offers").schema
    parts = []
    for kind, min_bid in (("on-demand", None), ("bid", np.round(base * 0.55, 4))):
        cols = dict(one, offer_type=_strings(np.zeros(n, np.int8), [kind]),
                    min_bid=pa.array(min_bid) if min_bid is not None else pa.nulls(n, pa.float64()))
        parts.append(pa.table({f.name: cols[f.name] if f.name in cols else pa.nulls(n, f.type)
                               for f in schema}, schema=schema))
    offers = pa.concat_tables(parts)
    counts = np.bincount(snap, minlength=snapshots) * 2
    log_schema = dataset("market_snapshots").schema
    log = pa.table({
        "snapshot_id": names,
        "snapshot_at": pa.array([day0 + timedelta(hours=int(h)) for h in hours],
                                pa.timestamp("us", tz="UTC")),
        "requests": [2 * len(GPUS)] * snapshots, "offers": counts.tolist(),
        "incomplete": [False] * snapshots, "gpu_names": [[g for g, _ in GPUS]] * snapshots,
        "allocated_storage_gb": [10.0] * snapshots, "quarantined_records": [0] * snapshots,
        "quarantined_values": [0] * snapshots, "new_fields": [[]] * snapshots,
        "schema_version": [1] * snapshots,
    }, schema=log_schema)
    return offers, log


def _write(root: Path, name: str, day_index: int, table: pa.Table) -> None:
    folder = root / name / f"snapshot_date={(START + timedelta(days=day_index)).isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "part-0.parquet", compression="zstd")


def ensure_market(cache: Path, offers: int, days: int, seed: int,
                  say: Callable[[str], None]) -> tuple[int, float]:
    """Days 0..days-1 whole, and the last day also with one snapshot fewer (`partial/`),
    unless cached. Returns (rows, seconds it took to generate, 0 when cached)."""
    done = cache / "COMPLETE"
    if done.exists():
        say(f"using cached market in {cache}")
        return int(done.read_text()), 0.0
    shutil.rmtree(cache, ignore_errors=True)
    mk = _machines(offers, seed)
    rows, started = 0, time.monotonic()
    for d in range(days):
        table, log = generate_day(mk, d, seed)
        _write(cache / "parquet", "market_offers", d, table)
        _write(cache / "parquet", "market_snapshots", d, log)
        rows += table.num_rows
        if d % 30 == 0:
            say(f"market day {d + 1}/{days}: {rows:,} rows")
    table, log = generate_day(mk, days - 1, seed, SNAPSHOTS_PER_DAY - 1)
    _write(cache / "partial", "market_offers", days - 1, table)
    _write(cache / "partial", "market_snapshots", days - 1, log)
    seconds = time.monotonic() - started
    done.write_text(str(rows))
    return rows, seconds


def _link_market(cache: Path, home: Path, days: int, newest: str) -> None:
    """Link market days 0..days-2 whole and the last day from `newest` ('partial' or
    'parquet': the day before or after its last snapshot)."""
    for name in ("market_offers", "market_snapshots"):
        for d in range(days):
            folder = f"snapshot_date={(START + timedelta(days=d)).isoformat()}"
            src = cache / (newest if d == days - 1 else "parquet") / name / folder
            dst = home / "parquet" / name / folder
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.is_symlink():
                dst.unlink()
            dst.symlink_to(src, target_is_directory=True)


# --------------------------------------------------------------------------- measuring


def reference_pass(home: Path, memory_limit: str) -> float:
    """Wall seconds of REFERENCE_SQL over the home's market Parquet into a DuckDB file."""
    import duckdb

    target = home / "reference.duckdb"
    target.unlink(missing_ok=True)
    con = duckdb.connect(str(target))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    glob = "'" + str(home / "parquet" / "market_offers" / "*" / "*.parquet") + "'"
    started = time.perf_counter()
    con.execute(REFERENCE_SQL.format(glob=glob))
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    con.close()
    target.unlink()
    return seconds


def run(offers: int, days: int, instances: int, bench_dir: Path, repeat: int, seed: int,
        memory_limit: str, say: Callable[[str], None]) -> dict[str, Any]:
    fleet_cache = bench_dir / f"fleet-{instances}x{days}-s{seed}"
    ensure_cache(fleet_cache, instances, days, seed, say)
    market_cache = bench_dir / f"market-{offers}x{days}-s{seed}"
    rows, generated_s = ensure_market(market_cache, offers, days, seed, say)
    out: dict[str, list[float]] = {k: [] for k in (
        "reference_s", "full_s", "market_full_s", "incremental_s", "plain_incremental_s",
        "market_incremental_s")}

    def build(home: Path, full: bool) -> warehouse.BuildResult:
        return warehouse.build(home, cadence_minutes=CADENCE_MINUTES, full=full,
                               memory_limit=memory_limit, progress=lambda m: say(f"  {m}"))

    for i in range(repeat):
        plain, home = bench_dir / "run-plain", bench_dir / "run"
        for h in (plain, home):
            shutil.rmtree(h, ignore_errors=True)
            h.mkdir(parents=True)
            _link_days(fleet_cache, h, range(days))
        _link_market(market_cache, home, days, "partial")
        say(f"run {i + 1}/{repeat}: reference pass ...")
        out["reference_s"].append(reference_pass(home, memory_limit))
        say(f"run {i + 1}/{repeat}: full builds ...")
        full = build(home, full=True)
        out["full_s"].append(full.seconds)
        out["market_full_s"].append(sum(full.model_seconds[m] for m in MARKET_MODELS))
        build(plain, full=True)
        say(f"run {i + 1}/{repeat}: incremental builds ...")
        _link_days(fleet_cache, plain, [days])
        t0 = time.perf_counter()
        build(plain, full=False)
        out["plain_incremental_s"].append(time.perf_counter() - t0)
        _link_days(fleet_cache, home, [days])
        _link_market(market_cache, home, days, "parquet")
        t0 = time.perf_counter()
        inc = build(home, full=False)
        out["incremental_s"].append(time.perf_counter() - t0)
        out["market_incremental_s"].append(sum(inc.model_seconds[m] for m in MARKET_MODELS))
        assert inc.updated_in_place, "the incremental build did not update in place"
    med = {k: statistics.median(v) for k, v in out.items()}
    return {**med, "runs": out, "rows": rows, "offers": offers, "days": days,
            "instances": instances, "generated_s": generated_s,
            "load": os.getloadavg()[0]}


def render(res: dict[str, Any]) -> str:
    extra = res["incremental_s"] - res["plain_incremental_s"]
    ratio = res["market_full_s"] / res["reference_s"]
    ratios = [m / r for m, r in zip(res["runs"]["market_full_s"], res["runs"]["reference_s"],
                                    strict=True)]
    ok = "ok" if extra <= GOALS["incremental_extra_s"] else "MISSED"
    gen = (f"generated in {res['generated_s']:.0f} s" if res["generated_s"]
           else "cached")
    return "\n".join([
        f"market benchmark: {res['offers']:,} offer rows per hourly snapshot x {res['days']} "
        f"days = {res['rows']:,} market_offers rows ({gen}); fleet of {res['instances']:,} "
        "instances at 15 minutes",
        f"  incremental, +1 market snapshot and +1 fleet day   {res['incremental_s']:6.2f} s "
        f"(market models {res['market_incremental_s']:.2f} s)",
        f"  the same build without any market                  "
        f"{res['plain_incremental_s']:6.2f} s",
        f"  the market's extra cost: {extra:+.2f} s   goal <= "
        f"+{GOALS['incremental_extra_s']:.1f} s   {ok}",
        f"  full build {res['full_s']:.1f} s, of which the market models "
        f"{res['market_full_s']:.1f} s",
        f"  reference pass (quantiles per snapshot, GPU model and type, one query) "
        f"{res['reference_s']:.1f} s",
        f"  market models / reference pass: {ratio:.2f}x   (runs "
        f"{min(ratios):.2f}-{max(ratios):.2f}x; medians of {len(ratios)} runs)",
        f"  machine: {os.cpu_count()} cores, load average {res['load']:.1f} at the end",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m bench market`."""
    parser = argparse.ArgumentParser(prog="python -m bench market", description=__doc__)
    parser.add_argument("--offers", type=int, default=5000,
                        help="offer rows per market snapshot (both types)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--instances", type=int, default=200, help="the fleet beside it")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory-limit", default=warehouse.DEFAULT_MEMORY_LIMIT)
    args = parser.parse_args(argv)
    if args.offers < 2 or args.days < 2 or args.instances < 1:
        parser.error("need at least 2 offers, 2 days and 1 instance")

    def say(msg: str) -> None:
        if is_interactive():
            print(msg, file=sys.stderr, flush=True)

    print(render(run(args.offers, args.days, args.instances, args.dir.resolve(), args.repeat,
                     args.seed, args.memory_limit, say)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
