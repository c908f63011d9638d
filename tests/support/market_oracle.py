"""What the market models must hold for the fixed market, worked out in plain Python.

Nothing here reads the warehouse or reuses the product's SQL: prices come from the offers
`tests/support/market_fixtures.py` wrote, the fleet's side from the scenario's own instances
and the plain-Python intervals of tests/support/scenario_oracle.py, under the rules issue 21
states (quantiles by linear interpolation between order statistics, written out here).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tests.support.market_fixtures import all_offers, extra_fleet
from tests.support.scenario_oracle import Scenario

QUANTILES = {"p10": 0.10, "p25": 0.25, "median": 0.50, "p75": 0.75, "p90": 0.90}


@dataclass(frozen=True)
class Thresholds:
    lookback_hours: float = 24
    min_seen_share: float = 0.5
    min_monthly_savings: float = 5
    min_savings_pct: float = 3


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks: position q x (n - 1) of the sorted
    values (the definition of R's type 7, numpy's default)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def per_gpu_hour(offer: dict[str, Any]) -> float | None:
    price = offer["min_bid"] if offer["offer_type"] == "bid" else offer["dph_base"]
    return None if price is None else price / offer["num_gpus"]


def market_prices(times: list[datetime]) -> dict[tuple[datetime, str, str], dict[str, float]]:
    """(snapshot_at, gpu_name, offer_type) -> offers, min and the quantiles per GPU-hour."""
    groups: dict[tuple[datetime, str, str], list[float]] = defaultdict(list)
    for o in all_offers(times):
        price = per_gpu_hour(o)
        if price is not None:
            groups[(o["snapshot_at"], o["gpu_name"], o["offer_type"])].append(price)
    out = {}
    for key, values in groups.items():
        row = {"offers": len(values), "min": min(values)}
        row.update({name: quantile(values, q) for name, q in QUANTILES.items()})
        out[key] = row
    return out


def scenario_with_market_fleet() -> Scenario:
    """The scenario's instances plus account `mkt`'s (collected at the same times)."""
    scenario = Scenario()
    scenario.specs = scenario.specs + extra_fleet()
    return scenario


def paid_vs_market(times: list[datetime]) -> dict[tuple[date, str, int], dict[str, Any]]:
    """(day, account, instance_id) -> the paid_vs_market figures."""
    scenario = scenario_with_market_fleet()
    prices = market_prices(times)
    daily: dict[tuple[date, str, str], list[dict[str, float]]] = defaultdict(list)
    for (at, gpu, kind), row in prices.items():
        daily[(at.date(), gpu, kind)].append(row)
    spent: dict[tuple[date, str, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for p in scenario.pieces:
        acc = spent[(p.day, p.account, p.instance_id)]
        acc[0] += p.running_hours
        acc[1] += p.gpu_hours
        acc[2] += p.gpu_cost
    specs = {(s.account, s.id): s for s in scenario.specs}
    out = {}
    for (day, account, iid), (hours, gpu_hours, cost) in spent.items():
        spec = specs[(account, iid)]
        kind = "bid" if spec.is_bid else "on-demand"
        market = daily.get((day, spec.gpu_name, kind))
        if hours <= 0 or not market:
            continue
        paid = cost / gpu_hours
        median = sum(m["median"] for m in market) / len(market)
        out[(day, account, iid)] = {
            "gpu_name": spec.gpu_name, "offer_type": kind, "instance_hours": hours,
            "gpu_hours": gpu_hours, "paid_per_gpu_hour": paid,
            "market_snapshots": len(market), "market_median_per_gpu_hour": median,
            "market_p25_per_gpu_hour": sum(m["p25"] for m in market) / len(market),
            "premium_pct": 100 * (paid - median) / median,
        }
    return out


def _offer_price(offer: dict[str, Any], disk: float) -> float:
    return offer["dph_base"] + offer["storage_cost"] * disk / 720


def savings(times: list[datetime], th: Thresholds = Thresholds()
            ) -> dict[tuple[str, int], dict[str, Any]]:
    """(account, instance_id) -> its savings_opportunities row."""
    if (times[-1] - times[0]).total_seconds() / 3600 < th.lookback_hours:
        return {}
    t = times[-1]
    window = [s for s in times if t - timedelta(hours=th.lookback_hours) < s <= t]
    offers = [o for o in all_offers(window) if o["offer_type"] == "on-demand"]
    newest = [o for o in offers if o["snapshot_at"] == t]
    scenario = scenario_with_market_fleet()
    last = scenario.times[-1]
    out = {}
    for spec in scenario.specs:
        rec = spec.record(last)
        if (rec is None or rec["actual_status"] != "running" or rec["is_bid"]
                or rec["reliability2"] is None):
            continue
        disk = rec["disk_space"]
        current = rec["dph_base"] + rec["storage_total_cost"]
        choices = []
        for o in newest:
            if (o["gpu_name"] != spec.gpu_name or o["num_gpus"] != spec.num_gpus
                    or o["verification"] != "verified" or o["reliability"] < rec["reliability2"]
                    or o["disk_space"] < disk or o["machine_id"] == spec.machine_id):
                continue
            price = _offer_price(o, disk)
            seen = {s["snapshot_at"] for s in offers
                    if (s["machine_id"], s["num_gpus"]) == (o["machine_id"], o["num_gpus"])
                    and _offer_price(s, disk) <= price}
            share = len(seen) / len(window)
            if share >= th.min_seen_share:
                choices.append((price, -o["reliability"], o["machine_id"], o["id"], o, share))
        if not choices:
            continue
        price, _, _, _, best, share = min(choices, key=lambda c: c[:4])
        monthly, pct = (current - price) * 730, 100 * (current - price) / current
        if monthly > th.min_monthly_savings and pct > th.min_savings_pct:
            out[(spec.account, spec.id)] = {
                "label": spec.label, "gpu_name": spec.gpu_name, "num_gpus": spec.num_gpus,
                "current_per_hour": current, "offer_id": best["id"],
                "offer_machine_id": best["machine_id"], "offer_host_id": best["host_id"],
                "offer_per_hour": price, "offer_reliability": best["reliability"],
                "offer_geolocation": best["geolocation"], "seen_share": share,
                "monthly_savings": monthly, "savings_pct": pct,
            }
    return out


def by_gpu(times: list[datetime], d0: date, d1: date, account: str | None = None
           ) -> dict[tuple[str, str], dict[str, float]]:
    """(gpu_name, offer_type) -> the report's per-GPU-model market figures over d0..d1."""
    paid: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for (day, acc, _iid), r in paid_vs_market(times).items():
        if d0 <= day <= d1 and account in (None, acc):
            sums = paid[(r["gpu_name"], r["offer_type"])]
            sums[0] += r["gpu_hours"]
            sums[1] += r["paid_per_gpu_hour"] * r["gpu_hours"]
            sums[2] += r["gpu_hours"] if r["premium_pct"] > 0 else 0.0
    market: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for (at, gpu, kind), row in market_prices(times).items():
        if d0 <= at.date() <= d1:
            market[(gpu, kind)].append(row)
    out = {}
    for key, (hours, cost, above) in paid.items():
        rows = market[key]
        mean = {q: sum(r[q] for r in rows) / len(rows) for q in ("p25", "median", "p75")}
        out[key] = {"gpu_hours": hours, "paid_per_gpu_hour": cost / hours,
                    "market_p25_per_gpu_hour": mean["p25"],
                    "market_median_per_gpu_hour": mean["median"],
                    "market_p75_per_gpu_hour": mean["p75"], "market_snapshots": len(rows),
                    "share_above_median": above / hours,
                    "premium_pct": 100 * (cost / hours - mean["median"]) / mean["median"]}
    return out
