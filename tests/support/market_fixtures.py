"""A small fixed market (no tests here), written as real Parquet through the storage layer
in the market contract's layout: `parquet/market_offers/snapshot_date=D/*.parquet` (one row
per (snapshot, offer_type, id)) and `parquet/market_snapshots/snapshot_date=D/*.parquet`
(the commit log, one row per market snapshot), partitioned by `snapshot_date` only.

`fixed_market` is hourly snapshots ending at 2026-11-20 23:00 UTC, beside the hand-made fleet
(tests/support/report_fixtures.py, whose newest snapshot is 23:45 that day) and a third
account `mkt` written here (`extra_fleet`). Besides a seeded background of offers (host
scores 0.80-0.89, below every instance's reliability2, so none of them is ever advice),
it holds offers placed for each rule of `savings_opportunities` (the lookback window of the
24 snapshots k = 24..47, t = k 47):
- instance 101 (2x RTX 4090, machine 5001, $0.82/h, disk 100, score 0.99): A (9001), H
  (9000, its id changes at k 30) and I (8999) tie at the lowest price; A and H tie on
  reliability, H has the lower machine id and wins; cheaper ones are unverified (B), below
  its score (C), too small a disk (D), its own machine (E), offered only lately (F: 6 of 24)
  or at that price only lately (G: 10 of 24);
- instances 105 (main, machine 5001), 201 (lab, 5006) and 302 (mkt, 5302), 1x RTX 4090 at
  $0.41/h: J (on 5001, a fleet machine) is the best for 201 and 302 (one offer, two
  instances); 105 may not take its own machine: its best is G3, at its price in exactly 12
  of the 24 window snapshots (k 36..47: a window that took in k 23 too would make that
  12 of 25, too few); J2 is dearer;
- 301 (mkt, 1x RTX 4090) has no reliability2: no row whatever the offers;
- 104 (8x H100 SXM, $16.15/h, score 0.90): L saves $248/month but only 2.1%: no row;
- 103 (1x RTX 3090, $0.26/h): K saves $3.65/month: no row;
- every placed offer is also listed as `bid`, far cheaper: interruptible offers are never
  advice, but they are the market of 102 (interruptible A100 SXM4);
- a snapshot's offers at 23:30 whose log row is missing (it did not land whole): ignored.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.storage.datasets import dataset
from pipeline.storage.store import Store
from tests.support.report_fixtures import HistoryWriter, Spec, snapshot_times

MARKET_END = datetime(2026, 11, 20, 23, tzinfo=UTC)  # the newest market snapshot, k = 47
SNAPSHOTS = 48
UNCOMMITTED_AT = MARKET_END + timedelta(minutes=30)
BACKGROUND = {"RTX 4090": ((1, 2, 4), 0.45), "RTX 3090": ((1, 2), 0.22),
              "A100 SXM4": ((1, 8), 1.10), "H100 SXM": ((8,), 2.20)}


def market_times(count: int = SNAPSHOTS, end: datetime = MARKET_END) -> list[datetime]:
    """The hourly market snapshot times, oldest first, ending at `end`."""
    return [end - timedelta(hours=count - 1 - k) for k in range(count)]


@dataclass(frozen=True)
class Placed:
    """An offer placed for one rule: present and priced per snapshot index k."""

    key: str
    machine_id: int
    num_gpus: int
    gpu_name: str
    reliability: float
    disk_space: float
    storage_cost: float
    base: Any  # k -> dph_base, or None when not offered at k
    verification: str = "verified"
    offer_id: Any = None  # k -> id (default: one id throughout)


def _always(price: float) -> Any:
    return lambda k: price


def placed_offers() -> list[Placed]:
    x2, x1 = "RTX 4090", "RTX 4090"
    return [
        Placed("A", 9001, 2, x2, 0.995, 200, 0.10, _always(0.60)),
        Placed("H", 9000, 2, x2, 0.995, 200, 0.10, _always(0.60),
               offer_id=lambda k: 1000 if k < 30 else 1100),
        Placed("I", 8999, 2, x2, 0.990, 200, 0.10, _always(0.60)),
        Placed("B", 9002, 2, x2, 0.999, 200, 0.10, _always(0.50), verification="unverified"),
        Placed("C", 9003, 2, x2, 0.980, 200, 0.10, _always(0.55)),
        Placed("D", 9004, 2, x2, 0.999, 50, 0.10, _always(0.52)),
        Placed("E", 5001, 2, x2, 0.999, 500, 0.10, _always(0.40)),
        Placed("F", 9005, 2, x2, 0.999, 500, 0.10, lambda k: 0.45 if k >= 42 else None),
        Placed("G", 9006, 2, x2, 0.999, 500, 0.10, lambda k: 0.58 if k >= 38 else 0.70),
        Placed("J", 5001, 1, x1, 0.995, 100, 0.072, _always(0.30)),
        Placed("J2", 9021, 1, x1, 0.995, 100, 0.072, _always(0.32)),
        Placed("G3", 9022, 1, x1, 0.990, 100, 0.072,
               lambda k: 0.31 if k >= 36 else 0.50),
        Placed("L", 9030, 8, "H100 SXM", 0.950, 200, 0.072, _always(15.80)),
        Placed("K", 9040, 1, "RTX 3090", 0.995, 100, 0.072, _always(0.245)),
    ]


def _offer(at: datetime, offer_type: str, offer_id: int, machine_id: int, gpu_name: str,
           num_gpus: int, base: float, storage_cost: float, disk: float, reliability: float,
           verification: str, min_bid: float | None) -> dict[str, Any]:
    return {
        "snapshot_id": f"market-{at:%Y%m%dT%H%M}", "snapshot_at": at,
        "offer_type": offer_type, "id": offer_id, "machine_id": machine_id,
        "host_id": machine_id + 100_000, "gpu_name": gpu_name, "num_gpus": num_gpus,
        "dph_base": base, "dph_total": base + storage_cost * 10 / 720,
        "min_bid": min_bid, "storage_cost": storage_cost, "disk_space": disk,
        "reliability": reliability, "verification": verification,
        "geolocation": f"Region {machine_id % 7}, {'US' if machine_id % 2 else 'DE'}",
        "dlperf": 10.0 * num_gpus, "inet_down": 900.0, "inet_up": 800.0,
        "duration": 86400.0 * 30, "rentable": True, "quarantined_values": 0,
    }


def snapshot_offers(k: int, at: datetime, seed: int = 3) -> list[dict[str, Any]]:
    """Every offer of snapshot k (taken at `at`), both types."""
    rows = []
    for p in placed_offers():
        base = p.base(k)
        if base is None:
            continue
        oid = p.offer_id(k) if p.offer_id else p.machine_id * 10 + p.num_gpus
        common = (p.machine_id, p.gpu_name, p.num_gpus, base, p.storage_cost, p.disk_space,
                  p.reliability, p.verification)
        rows.append(_offer(at, "on-demand", oid, *common, None))
        rows.append(_offer(at, "bid", oid, *common, round(base * 0.5, 6)))
    rng = random.Random(seed * 1000 + k)
    for g, (name, (counts, per_gpu)) in enumerate(sorted(BACKGROUND.items())):
        for m in range(12):
            if rng.random() < 0.15:  # rented away this hour
                continue
            machine = 20_000 + 100 * g + m
            n = counts[m % len(counts)]
            wave = 1 + 0.25 * math.sin(k / 5 + m) + 0.1 * rng.random()
            base = round(per_gpu * n * wave, 4)
            common = (machine, name, n, base, 0.1, 50.0 + 10 * m, 0.80 + 0.0075 * m,
                      "verified" if m % 3 else "unverified")
            oid = 500_000 + machine * 10 + (k // 20)
            rows.append(_offer(at, "on-demand", oid, *common, None))
            bid = None if m == 5 else round(base * (0.45 + 0.05 * rng.random()), 4)
            rows.append(_offer(at, "bid", oid, *common, bid))
    return rows


class MarketWriter:
    """Collects market snapshots in memory, then writes one file per dataset and day through
    the storage layer (atomically, as the market's landing does)."""

    def __init__(self, home: Path | str) -> None:
        self.store = Store(str(home))
        self.offers: dict[date, list[dict[str, Any]]] = defaultdict(list)
        self.log: dict[date, list[dict[str, Any]]] = defaultdict(list)

    def snapshot(self, at: datetime, offers: list[dict[str, Any]], *, committed: bool = True
                 ) -> None:
        self.offers[at.date()].extend(offers)
        if committed:
            self.log[at.date()].append({
                "snapshot_id": f"market-{at:%Y%m%dT%H%M}", "snapshot_at": at,
                "requests": 2, "offers": len(offers), "incomplete": False,
                "gpu_names": sorted({o["gpu_name"] for o in offers}),
                "allocated_storage_gb": 10.0, "quarantined_records": 0,
                "quarantined_values": 0, "new_fields": [], "schema_version": 1})

    def write(self) -> None:
        for day, rows in self.offers.items():
            self._write("market_offers", day, rows)
        for day, rows in self.log.items():
            self._write("market_snapshots", day, rows)

    def _write(self, name: str, day: date, rows: list[dict[str, Any]]) -> None:
        """One file per day in the registry's layout and schema (no account level)."""
        table = pa.Table.from_pylist(rows, dataset(name).schema)
        path = f"{self.store.partition_dir(name, None, day)}/part-0.parquet"
        self.store.write_parquet_atomic(path, table, compression="zstd")


def fixed_market(home: Path | str, first: int = 0, end: int = SNAPSHOTS, *,
                 uncommitted: bool = True) -> list[datetime]:
    """Write the fixed market's hourly snapshots k = first .. end - 1 and, if `uncommitted`,
    offers of a snapshot whose log row is missing; returns the committed times. Days are
    written whole, so writing again with a later `end` adds snapshots as collection does."""
    times = market_times()[first:end]
    writer = MarketWriter(home)
    for k, at in enumerate(market_times()):
        if at in times:
            writer.snapshot(at, snapshot_offers(k, at))
    if uncommitted:
        writer.snapshot(UNCOMMITTED_AT, snapshot_offers(SNAPSHOTS, UNCOMMITTED_AT),
                        committed=False)
    writer.write()
    return times


def all_offers(times: list[datetime]) -> list[dict[str, Any]]:
    """The committed snapshots' rows `fixed_market` wrote, for plain-Python expectations."""
    index = {at: k for k, at in enumerate(market_times())}
    return [o for at in times for o in snapshot_offers(index[at], at)]


class NoScore(Spec):
    """An instance whose snapshots carry no reliability2."""

    def reliability_at(self, t: datetime) -> float | None:  # type: ignore[override]
        return None


def extra_fleet() -> list[Spec]:
    """Account `mkt`: 301 (no reliability2) and 302, both 1x RTX 4090 at $0.41/h."""
    return [
        NoScore(301, "no-score", "RTX 4090", 1, 5301, 7301, "US", 0.40, 0.01, account="mkt"),
        Spec(302, "mkt-infer", "RTX 4090", 1, 5302, 7302, "US", 0.40, 0.01, account="mkt"),
    ]


def write_extra_fleet(home: Path | str) -> list[Spec]:
    """Write account `mkt`'s history at the scenario's collection times."""
    specs = extra_fleet()
    writer = HistoryWriter(Path(home))
    for t in snapshot_times():
        writer.snapshot("mkt", t, [r for s in specs if (r := s.record(t)) is not None])
    writer.write()
    return specs


def fleet_with_market(home: Path, first: int = 0, end: int = SNAPSHOTS, *,
                      market: bool = True) -> list[datetime]:
    """A new home holding the hand-made fleet, account `mkt` and (if `market`) the fixed
    market's snapshots k = first .. end - 1; returns the market's committed times."""
    from tests.support.report_fixtures import scenario_history

    home.mkdir(parents=True)
    scenario_history(home)
    write_extra_fleet(home)
    return fixed_market(home, first, end) if market else []
