"""Benchmark: rebuild the Parquet history from a raw zone, beside the naive baseline.

`python -m bench history [--records N]` generates (once, cached under --dir) a raw zone
of realistic simulator snapshots (1,000 instances every 15 minutes, with type drift, new
fields and broken records), then measures, each run in a fresh subprocess so peak memory
is that path's own:

- ours: `pipeline.landing.history.rebuild` (Arrow's JSON reader on each day's batch, drifted
  records set aside to the value-by-value flatten, sorted zstd Parquet);
- baseline: per day, `json.loads` of every line + `pandas.json_normalize` +
  `DataFrame.to_parquet` (the naive approach; when pyarrow refuses a drifted column the
  baseline stringifies its object columns and retries, the least it needs to finish);
- ours on half the records, to show that peak memory follows a day, not the history;
- ours with the columnar fast path switched off (every record through `flatten`);
- `land_pending` of one new snapshot on an empty history, on a day already holding 95
  snapshots, and on a new day of the full history: a collection's cost does not grow
  with the history;
- the simulator's `FleetModel.records_at` for the fleet (what one simulated snapshot costs
  the demo and the tests before any HTTP).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import with_root_on_path

ORIGIN = datetime(2026, 1, 5, tzinfo=UTC)
STEP = timedelta(minutes=15)
DEFAULT_DIR = Path("bench-out") / "history"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench history", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--records", type=int, default=200_000, help="raw records (default 200000)")
    p.add_argument("--instances", type=int, default=1000, help="fleet size (default 1000)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per path (default 3)")
    p.add_argument("--baseline-runs", type=int, default=1, help="runs of the baseline")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="cache and scratch directory")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=2,
                   help="processes for the parallel rebuild row (default 2)")
    p.add_argument("--clean-records", type=int, default=50_000,
                   help="records of the drift-free raw zone for the fast-path rows (0: skip)")
    p.add_argument("--worker", choices=("ours", "value", "baseline", "land"),
                   help=argparse.SUPPRESS)
    p.add_argument("--procs", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- the raw zone ---------------------------------------------------------------------------
def _snapshot_times(count: int) -> list[datetime]:
    return [ORIGIN + i * STEP for i in range(count)]


def generate_raw(root: Path, records: int, instances: int, seed: int, drift: bool = True) -> int:
    """Write simulator snapshots under `root` until `records` are reached; cached.

    With `drift` (the default) about 7% of records carry a type drift, 1% new fields and
    0.1% are broken; without, every snapshot is clean (what the fast path takes)."""
    from pipeline.landing.raw import RawSnapshot, write_snapshot
    from pipeline.sim.fleet import FleetModel
    from pipeline.storage.store import Store

    done = root / "_complete.json"
    if done.exists():
        return int(json.loads(done.read_text())["snapshots"])
    shutil.rmtree(root, ignore_errors=True)
    store = Store(root)
    rate = 0.01 if drift else 0.0
    fleet = FleetModel(seed=seed, size=instances, drift_rate=rate, new_field_rate=rate,
                       broken_rate=rate / 10)
    total, count = 0, 0
    while total < records:
        at = ORIGIN + count * STEP
        batch = fleet.records_at(at)
        write_snapshot(store, RawSnapshot(snapshot_id=f"bench{count:05d}", snapshot_at=at,
                                          account="bench", records=batch,
                                          pages=math.ceil(len(batch) / 25)))
        total, count = total + len(batch), count + 1
    done.write_text(json.dumps({"snapshots": count, "records": total}))
    return count


def _raw_files(root: Path) -> list[Path]:
    return sorted((root / "raw").rglob("*.ndjson.zst"), key=lambda p: p.name)


def _subset(src: Path, dst: Path, files: int) -> Path:
    """A raw zone holding the first `files` snapshots of `src` (hard links: no copying)."""
    shutil.rmtree(dst, ignore_errors=True)
    for f in _raw_files(src)[:files]:
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(f, target)
    return dst


def _count_records(root: Path) -> int:
    from pipeline.landing.raw import iter_snapshots
    from pipeline.storage.store import Store

    return sum(sum(1 for _ in s.records) for s in iter_snapshots(Store(root)))


# -- workers (each in a fresh process) ------------------------------------------------------
def _peak_rss_mb() -> float:
    """The largest peak of this process and of any child it waited for (per process)."""
    return max(resource.getrusage(who).ru_maxrss
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (parallel rebuild workers)."""
    return sum(u.ru_utime + u.ru_stime for u in (
        resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def _parquet_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*.parquet"))


def _work_ours(raw: Path, procs: int, fast_path: bool = True) -> dict[str, float]:
    from pipeline.landing.history import rebuild
    from pipeline.storage.store import Store

    if not fast_path:  # measure the value-by-value path alone (the history looks it up)
        import pipeline.landing.fastflatten

        pipeline.landing.fastflatten.flatten_bodies = lambda bodies: [None] * len(bodies)

    shutil.rmtree(raw / "parquet", ignore_errors=True)
    started, cpu = time.perf_counter(), _cpu_seconds()
    result = rebuild(Store(raw), workers=procs)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu": _cpu_seconds() - cpu, "rows": result.rows,
            "peak_mb": _peak_rss_mb(),
            "bytes": _parquet_size(raw / "parquet" / "instance_snapshots")}


def _work_baseline(raw: Path, out: Path) -> dict[str, float]:
    import pandas as pd
    import pyarrow as pa

    from pipeline.storage.store import Store

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    store = Store(raw)
    started, cpu = time.perf_counter(), _cpu_seconds()
    rows = 0
    for day_dir in sorted({f.parent for f in _raw_files(raw)}):
        records = []
        for f in sorted(day_dir.glob("*.ndjson.zst")):
            lines = store.read_bytes(str(f), "zstd").decode().splitlines()[1:]
            records += [r for r in (json.loads(line) for line in lines) if isinstance(r, dict)]
        frame = pd.json_normalize(records)
        target = out / f"{day_dir.parent.name}-{day_dir.name}.parquet"
        try:
            frame.to_parquet(target)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            for column in frame.select_dtypes(include="object").columns:
                frame[column] = frame[column].astype(str)
            frame.to_parquet(target)
        rows += len(frame)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu": _cpu_seconds() - cpu, "rows": rows,
            "peak_mb": _peak_rss_mb(),
            "bytes": _parquet_size(out)}


def _work_land(raw: Path, scratch: Path) -> dict[str, float]:
    """Median seconds of one landing: empty history, a 95-snapshot day, a new day."""
    from pipeline.landing.history import land_pending, rebuild
    from pipeline.landing.raw import RawSnapshot, read_snapshot, write_snapshot
    from pipeline.storage.store import Store

    files = _raw_files(raw)
    first_day = [f for f in files if f.parent == files[0].parent]
    probe = read_snapshot(Store(raw), str(first_day[min(95, len(first_day) - 1)]))

    def timed(store: Store, snapshot: RawSnapshot) -> float:
        times = []
        for i in range(3):  # a new snapshot each time, as a scheduled collection lands it
            fresh = replace(snapshot, snapshot_id=f"{snapshot.snapshot_id}-{i}",
                            snapshot_at=snapshot.snapshot_at + i * timedelta(seconds=1))
            write_snapshot(store, fresh)  # collection's part, not landing's: not timed
            started = time.perf_counter()
            land_pending(store, fresh.account, fresh.day)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    day95 = Store(_subset(raw, scratch / "day95", min(95, len(first_day) - 1)))
    rebuild(day95)
    history = Store(_subset(raw, scratch / "history", len(files)))
    rebuild(history)
    new_day = replace(probe, snapshot_id="benchnewday",
                      snapshot_at=ORIGIN + (len(files) + 96) * STEP)
    return {"empty": timed(Store(_fresh(scratch / "empty")), probe),
            "day95": timed(day95, probe),
            "new_day_big_history": timed(history, new_day)}


def fleet_snapshot_seconds(instances: int, seed: int, runs: int = 5) -> list[float]:
    """Seconds of `FleetModel.records_at` for consecutive 15-minute moments, cache warm."""
    from pipeline.sim.fleet import FleetModel

    model = FleetModel(seed=seed, size=instances)
    at = ORIGIN + timedelta(days=40)
    model.records_at(at)  # warm the lifecycle cache, as a running simulator has it
    timings = []
    for i in range(1, runs + 1):
        started = time.perf_counter()
        model.records_at(at + i * STEP)
        timings.append(time.perf_counter() - started)
    return timings


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _run_worker(kind: str, raw: Path, out: Path | None = None, procs: int = 1
                ) -> dict[str, float]:
    cmd = [sys.executable, "-m", "bench.history", "--worker", kind, "--raw", str(raw),
           "--procs", str(procs)]
    if out is not None:
        cmd += ["--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env=with_root_on_path())
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {kind} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the report ------------------------------------------------------------------------------
def _row(name: str, records: int, runs: list[dict[str, float]]) -> dict[str, object]:
    seconds = statistics.median(r["seconds"] for r in runs)
    return {"path": name, "records": records, "runs": len(runs), "seconds": seconds,
            "cpu": statistics.median(r["cpu"] for r in runs),
            "records_per_s": records / seconds, "peak_mb": max(r["peak_mb"] for r in runs),
            "bytes_per_row": runs[0]["bytes"] / max(runs[0]["rows"], 1)}


# Issue 11's targets, printed beside the measured ratios.
TARGET_RATIO = 12.0          # ours / baseline records per second, one process
TARGET_BYTES_PER_ROW = 35.0  # Parquet bytes per instance-snapshot row


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _print_table(rows: list[dict[str, object]], land: dict[str, float],
                 ratios: list[float]) -> None:
    print(f"{'path':<24}{'records':>9}{'runs':>5}{'median s':>10}{'CPU s':>8}{'records/s':>11}"
          f"{'peak RSS MB':>13}{'bytes/row':>11}")
    for r in rows:
        print(f"{r['path']:<24}{r['records']:>9}{r['runs']:>5}{r['seconds']:>10.2f}"
              f"{r['cpu']:>8.2f}{r['records_per_s']:>11.0f}{r['peak_mb']:>13.0f}"
              f"{r['bytes_per_row']:>11.1f}")
    ours, base = rows[0], rows[1]
    ratio = ours["records_per_s"] / base["records_per_s"]
    spread = f"{min(ratios):.1f}-{max(ratios):.1f}x" if len(ratios) > 1 else "one run"
    print(f"throughput ours/baseline: {ratio:.1f}x wall (runs {spread}), "
          f"{base['cpu'] / ours['cpu']:.1f}x CPU   target >= {TARGET_RATIO:.0f}x   "
          f"{_verdict(ratio >= TARGET_RATIO)}; "
          f"peak memory ours/baseline: {ours['peak_mb'] / base['peak_mb']:.2f}")
    print(f"Parquet bytes per row: {ours['bytes_per_row']:.1f}   target <= "
          f"{TARGET_BYTES_PER_ROW:.0f}   {_verdict(ours['bytes_per_row'] <= TARGET_BYTES_PER_ROW)}")
    print(f"peak RSS ours: {rows[2]['records']} records {rows[2]['peak_mb']:.0f} MB, "
          f"{ours['records']} records {ours['peak_mb']:.0f} MB (bounded by a day)")
    value = rows[4]
    gain = ours["records_per_s"] / value["records_per_s"]
    print(f"drifted raw zone: fast path / value path only {gain:.2f}x wall, "
          f"{value['cpu'] / ours['cpu']:.2f}x CPU")
    clean = {r["path"]: r for r in rows[5:]}
    if clean:
        fast, value = clean["clean: ours (fast path)"], clean["clean: value path only"]
        gain = fast["records_per_s"] / value["records_per_s"]
        print(f"clean snapshots: fast path / value path {gain:.2f}x "
              f"({fast['records_per_s']:.0f} vs {value['records_per_s']:.0f} records/s)")
    par = rows[3]
    print(f"parallel rebuild ({par['path']}): {par['records_per_s'] / base['records_per_s']:.1f}x "
          f"baseline wall throughput; peak RSS is per process (one day each)")
    print("land_pending median s: empty history {empty:.3f}, day with 95 snapshots "
          "{day95:.3f}, new day in full history {new_day_big_history:.3f}".format(**land))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker:
        if args.worker in ("ours", "value"):
            result = _work_ours(args.raw, args.procs, fast_path=args.worker == "ours")
        elif args.worker == "baseline":
            result = _work_baseline(args.raw, args.out)
        else:
            result = _work_land(args.raw, args.out)
        print(json.dumps(result))
        return 0
    base = args.dir.resolve()
    raw = base / f"raw-s{args.seed}-i{args.instances}-r{args.records}"
    snapshots = generate_raw(raw, args.records, args.instances, args.seed)
    half = _subset(raw, base / "half", max(1, snapshots // 2))
    records, half_records = _count_records(raw), _count_records(half)
    ours: list[dict[str, float]] = []
    value_only: list[dict[str, float]] = []
    parallel: list[dict[str, float]] = []
    baseline: list[dict[str, float]] = []
    for i in range(max(args.runs, args.baseline_runs)):  # interleaved: load hits all alike
        if i < args.runs:
            ours.append(_run_worker("ours", raw))
            value_only.append(_run_worker("value", raw))
            parallel.append(_run_worker("ours", raw, procs=args.workers))
        if i < args.baseline_runs:
            baseline.append(_run_worker("baseline", raw, base / "baseline"))
    ours_half = [_run_worker("ours", half)]
    land = _run_worker("land", raw, base / "land")
    rows = [_row("ours (rebuild, 1 proc)", records, ours),
            _row("baseline (pandas)", records, baseline),
            _row("ours, half the records", half_records, ours_half),
            _row(f"ours ({args.workers} processes)", records, parallel),
            _row("value path only", records, value_only)]
    if args.clean_records:
        clean = base / f"clean-s{args.seed}-i{args.instances}-r{args.clean_records}"
        generate_raw(clean, args.clean_records, args.instances, args.seed, drift=False)
        clean_records = _count_records(clean)
        fast, value = [], []
        for _ in range(args.runs):
            fast.append(_run_worker("ours", clean))
            value.append(_run_worker("value", clean))
        rows += [_row("clean: ours (fast path)", clean_records, fast),
                 _row("clean: value path only", clean_records, value)]
    # Per-run ratios pair each of our runs with the baseline run closest in time.
    ratios = [(records / r["seconds"]) / (records / baseline[min(i, len(baseline) - 1)]["seconds"])
              for i, r in enumerate(ours)]
    _print_table(rows, land, ratios)
    fleet = fleet_snapshot_seconds(args.instances, args.seed)
    print(f"simulator records_at, {args.instances} instances: median "
          f"{statistics.median(fleet):.3f} s, max {max(fleet):.3f} s over {len(fleet)} moments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
