"""`python -m bench market-landing`: landing one market snapshot of ~5,000 offers from its
raw file (issue 21's target: <= 1 s; the API's pacing is left out, the search is not run).

The raw file is generated once (offers shaped like the search's documented answer, both
types, priced in continuation pages of 1,000 that overlap at their last price), then landed
into an empty day and into a day already holding 23 snapshots (the last hour of a day at
the default hourly cadence), several times each. The baseline, measured in the same run
on the same file: read the pages with the standard `json` module, de-duplicate the offers
by (type, id) and write them with pandas' `to_parquet`, untyped and without quarantine.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET_SECONDS = 1.0
ORIGIN = datetime(2026, 6, 1, tzinfo=UTC)
GPUS = ("RTX 4090", "RTX 3090", "A100 SXM4", "H100 SXM", "RTX A6000", "L40S", "RTX 5090")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench market-landing", description=__doc__)
    p.add_argument("--offers", type=int, default=5000, help="offers in the snapshot")
    p.add_argument("--runs", type=int, default=5, help="landings timed per case")
    p.add_argument("--limit", type=int, default=1000, help="offers per response page")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--dir", help="scratch folder (default: a temporary one)")
    return p.parse_args(argv)


def _offer(rng: random.Random, offer_id: int, offer_type: str) -> dict:
    gpus = rng.choice((1, 1, 1, 2, 4, 8))
    base = round(rng.uniform(0.1, 3.0) * gpus, 4)
    return {
        "id": offer_id, "ask_contract_id": offer_id, "bundle_id": offer_id * 3,
        "machine_id": 10_000 + offer_id // 2, "host_id": 500 + offer_id % 97,
        "gpu_name": rng.choice(GPUS), "num_gpus": gpus, "gpu_frac": 1.0,
        "gpu_ram": 24576, "gpu_total_ram": 24576 * gpus, "compute_cap": 890,
        "cpu_cores": 32, "cpu_cores_effective": 8.0 * gpus, "cpu_ram": 65536,
        "cpu_name": "AMD EPYC 7543", "cpu_arch": "amd64", "cpu_ghz": 2.8,
        "disk_space": round(rng.uniform(50, 2000), 1), "disk_bw": 2500.0,
        "disk_name": "nvme", "inet_up": round(rng.uniform(100, 5000), 1),
        "inet_down": round(rng.uniform(100, 5000), 1), "pcie_bw": 24.5, "bw_nvlink": 0.0,
        "dlperf": round(rng.uniform(10, 200), 2), "dlperf_per_dphtotal": 90.0,
        "flops_per_dphtotal": 120.0, "total_flops": 80.0 * gpus, "score": 150.0,
        "cuda_max_good": 12.4, "driver_version": "550.54.14", "driver_vers": 550054014,
        "dph_base": base, "dph_total": round(base + 0.02, 4),
        "min_bid": round(base * 0.6, 4) if offer_type == "bid" else None,
        "storage_cost": 0.15, "storage_total_cost": 0.0017, "inet_up_cost": 0.002,
        "inet_down_cost": 0.002, "vram_costperhour": 0.001,
        "reliability": round(rng.uniform(0.9, 1.0), 4), "reliability2": 0.99,
        "verification": rng.choice(("verified", "verified", "unverified", "deverified")),
        "hosting_type": rng.choice((0, 1)), "geolocation": rng.choice(("Texas, US", "Oslo, NO")),
        "geolocode": 42, "rentable": True, "rented": False, "is_bid": offer_type == "bid",
        "external": None, "static_ip": True, "has_avx": 1, "gpu_display_active": False,
        "vms_enabled": False, "start_date": 1780000000.5, "end_date": 1790000000,
        "duration": round(rng.uniform(1e5, 1e7), 1), "os_version": "22.04",
        "mobo_name": "ROMED8", "public_ipaddr": "203.0.113.7", "pci_gen": 4, "gpu_lanes": 16,
        "direct_port_count": 40, "gpu_ids": list(range(gpus)),
        "search": {"gpuCostPerHour": base, "diskHour": 0.02, "totalHour": base + 0.02},
        "instance": {"gpuCostPerHour": base, "diskHour": 0.02, "totalHour": base + 0.02},
        "time_remaining": "", "time_remaining_isbid": "",
    }


def generate(offers: int, limit: int, seed: int):
    """A raw market snapshot of `offers` offers (half each type) in continuation pages."""
    from pipeline.market.raw import RawMarketSnapshot
    from pipeline.market.search import SearchPage

    rng = random.Random(seed)
    pages = []
    for type_index, offer_type in enumerate(("on-demand", "bid")):
        ids = range(type_index * 10 * offers, type_index * 10 * offers + offers // 2)
        rows = sorted((_offer(rng, i, offer_type) for i in ids), key=lambda o: o["dph_total"])
        start = 0
        while True:  # each page starts at the previous page's last price: an overlap
            page = rows[start:start + limit]
            pages.append(SearchPage(offer_type, {"type": offer_type, "limit": limit},
                                    {"offers": page}))
            if len(page) < limit:
                break
            last = page[-1]["dph_total"]
            start = next(i for i, o in enumerate(rows) if o["dph_total"] >= last)
            if start + limit >= len(rows) + limit:
                break
    return RawMarketSnapshot(snapshot_id="bench", snapshot_at=ORIGIN, pages=pages,
                             requests=len(pages), gpu_names=list(GPUS),
                             allocated_storage_gb=8.0, limit=limit)


def _time_landings(home: Path, snapshot, runs: int, earlier: int) -> list[float]:
    """Seconds of `land_market_pending` for `runs` new snapshots, each on a day already
    holding `earlier` snapshots (written and landed first, not timed)."""
    from pipeline.market.landing import land_market_pending
    from pipeline.market.raw import write_raw
    from pipeline.storage.store import Store

    times = []
    for run in range(runs):
        shutil.rmtree(home, ignore_errors=True)
        store = Store(home)
        day = ORIGIN + timedelta(days=run)
        for hour in range(earlier):
            write_raw(store, replace(snapshot, snapshot_id=f"early{hour}",
                                     snapshot_at=day + timedelta(hours=hour)))
        if earlier:
            land_market_pending(store, day.date())
        write_raw(store, replace(snapshot, snapshot_id="new",
                                 snapshot_at=day + timedelta(hours=earlier)))
        started = time.perf_counter()
        land_market_pending(store, day.date())
        times.append(time.perf_counter() - started)
    return times


def _time_baseline(raw_file: Path, out: Path, runs: int) -> list[float]:
    import pandas as pd
    import pyarrow as pa

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with pa.input_stream(str(raw_file), compression="zstd") as stream:
            lines = stream.read().split(b"\n")
        seen, rows = set(), []
        for line in lines[1:]:
            if not line:
                continue
            page = json.loads(line)
            for offer in page["response"]["offers"]:
                key = (page["offer_type"], offer["id"])
                if key not in seen:
                    seen.add(key)
                    rows.append({**offer, "offer_type": page["offer_type"]})
        frame = pd.DataFrame(rows).drop(columns=["search", "instance", "gpu_ids"])
        frame.to_parquet(out, compression="zstd", index=False)
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from pipeline.market.raw import write_raw
    from pipeline.storage.store import Store

    scratch = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-market-"))
    snapshot = generate(args.offers, args.limit, args.seed)
    raw_home = scratch / "raw"
    raw_file = Path(write_raw(Store(raw_home), snapshot))
    offers = sum(len(p.offers) for p in snapshot.pages)
    print(f"market snapshot: {args.offers} offers in {len(snapshot.pages)} response pages "
          f"({offers} offers sent, overlap included), raw file "
          f"{raw_file.stat().st_size / 1e6:.1f} MB compressed")
    baseline = _time_baseline(raw_file, scratch / "baseline.parquet", args.runs)
    empty = _time_landings(scratch / "empty", snapshot, args.runs, earlier=0)
    full_day = _time_landings(scratch / "day", snapshot, max(1, args.runs // 2), earlier=23)
    base = statistics.median(baseline)
    for name, times in (("into an empty day", empty), ("into a day of 23 snapshots", full_day)):
        median = statistics.median(times)
        verdict = "meets" if median <= TARGET_SECONDS else "MISSES"
        print(f"landing {name}: median {median:.3f} s over {len(times)} runs "
              f"(target <= {TARGET_SECONDS:.1f} s: {verdict}); {median / base:.2f}x the "
              f"baseline")
    print(f"baseline (json + pandas to_parquet, untyped, no quarantine): median {base:.3f} s "
          f"over {len(baseline)} runs")
    if not args.dir:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0
