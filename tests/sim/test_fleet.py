"""Invariants of the seeded fleet model, checked over many seeds and moments (hypothesis)."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.sim.billing import overlay
from pipeline.sim.fleet import (
    ACTUAL_STATUSES,
    CUR_STATES,
    INTENDED_STATUSES,
    MEAN_LIFETIME_SECONDS,
    PHASES,
    FleetModel,
    mean_lifetime,
)

ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)



def _words(text: str) -> set[str]:
    return set(text.split())


# The keys of the documented example (tests/data/show_instance_example.json), and the extra
# keys the reference says real responses carry: the spec every record must satisfy.
EXAMPLE_KEYS = set(json.loads((Path(__file__).parents[1] / "data" / "show_instance_example.json")
                              .read_text())["instances"])

EXTRA_KEYS = _words("""
inet_up inet_down inet_up_cost inet_down_cost inet_up_billed inet_down_billed
internet_up_cost_per_tb internet_down_cost_per_tb gpu_util gpu_temp cuda_max_good
driver_version compute_cap has_avx gpu_display_active bundle_id volume_info country_code
template_name uptime_mins
""")
ACTUAL = set(ACTUAL_STATUSES)
INTENDED = set(INTENDED_STATUSES)
CUR = set(CUR_STATES)
PRICING_KEYS = {"gpuCostPerHour", "diskHour", "totalHour", "discountTotalHour",
                "discountedTotalPerHour"}

seeds = st.integers(min_value=0, max_value=10_000)
# Moments from before the origin to a year after it, at second resolution.
moments = st.integers(min_value=-30 * 86400, max_value=365 * 86400).map(
    lambda s: ORIGIN + timedelta(seconds=s))
fast = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@cache
def fleet(seed: int, size: int = 30) -> FleetModel:
    return FleetModel(seed=seed, size=size)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@fast
@given(seeds, moments)
def test_money_fields_are_consistent(seed: int, t: datetime) -> None:
    records = fleet(seed % 7).records_at(t)
    assert records
    for r in records:
        assert close(r["storage_total_cost"], r["storage_cost"] * r["disk_space"] / 720)
        assert close(r["dph_total"], r["dph_base"] + r["storage_total_cost"])
        search, inst = r["search"], r["instance"]
        assert set(search) == set(inst) == PRICING_KEYS
        assert search["gpuCostPerHour"] == r["dph_base"]
        assert close(search["diskHour"], r["storage_total_cost"])
        assert close(search["totalHour"], r["dph_total"])
        gpu_billed = r["actual_status"] in ("running", "frozen")
        assert inst["gpuCostPerHour"] == (r["dph_base"] if gpu_billed else 0)
        disk_billed = r["actual_status"] != "offline"
        assert close(inst["diskHour"], r["storage_total_cost"] if disk_billed else 0)
        for p in (search, inst):
            assert close(p["totalHour"], p["gpuCostPerHour"] + p["diskHour"])
            assert close(p["discountedTotalPerHour"], p["totalHour"] - p["discountTotalHour"])
            assert 0 <= p["discountTotalHour"] <= p["totalHour"]
        assert r["dph_base"] > 0 and r["min_bid"] <= r["dph_base"] * 1.34
        assert 0 <= r["reliability2"] <= 1


def test_phases_use_the_documented_statuses() -> None:
    assert len(ACTUAL) == 10 and {"offline", "unknown", None} <= ACTUAL
    for actual, intended, cur, nxt in PHASES.values():
        assert actual in ACTUAL and intended in INTENDED and cur in CUR and nxt in CUR


def test_mean_lifetime_constant_matches_its_definition() -> None:
    assert math.isclose(MEAN_LIFETIME_SECONDS, mean_lifetime(), rel_tol=1e-12)


@fast
@given(seeds, moments)
def test_ids_unique_sorted_and_statuses_documented(seed: int, t: datetime) -> None:
    records = fleet(seed % 7).records_at(t)
    ids = [r["id"] for r in records]
    assert ids == sorted(set(ids))
    for r in records:
        assert set(r) >= EXAMPLE_KEYS | EXTRA_KEYS
        assert r["actual_status"] in ACTUAL
        assert r["intended_status"] in INTENDED
        assert r["cur_state"] in CUR
        assert r["start_date"] <= t.timestamp()
        assert r["num_gpus"] in (1, 2, 4, 8)
        assert len(r["jupyter_token"]) == 64 and int(r["jupyter_token"], 16) >= 0
        assert all(isinstance(pair, list) and len(pair) == 2 for pair in r["extra_env"])
        assert r["geolocation"].endswith(", " + r["country_code"])


@fast
@given(seeds, moments, st.integers(min_value=60, max_value=20 * 86400))
def test_destroyed_ids_never_return_and_new_ids_grow(seed: int, t0: datetime,
                                                     gap: int) -> None:
    model = fleet(seed % 7)
    t1, t2 = t0 + timedelta(seconds=gap), t0 + timedelta(seconds=2 * gap)
    at0, at1, at2 = (set(model.ids_at(t)) for t in (t0, t1, t2))
    gone = at0 - at1
    assert not gone & at2, "an instance came back after being destroyed"
    if at0:
        assert all(new > max(at0) for new in at1 - at0), "a new instance reused an old id"


def test_determinism_in_any_call_order() -> None:
    times = [ORIGIN + timedelta(hours=h) for h in (5, 300, 40, 2000, 7)]
    a, b = FleetModel(seed=11, size=50), FleetModel(seed=11, size=50)
    forward = {t: a.records_at(t) for t in times}
    backward = {t: b.records_at(t) for t in reversed(times)}
    assert forward == backward
    some_id = forward[times[1]][3]["id"]
    assert FleetModel(seed=11, size=50).record(some_id, times[1]) == forward[times[1]][3]
    assert FleetModel(seed=12, size=50).records_at(times[0]) != forward[times[0]]


def _digest(records: list) -> str:
    return hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()


def test_determinism_across_processes() -> None:
    t = ORIGIN + timedelta(days=3, minutes=17)
    code = ("import json,hashlib,sys;from datetime import datetime;from pipeline.sim.fleet import "
            "FleetModel;r=FleetModel(seed=5,size=30,drift_rate=0.3).records_at("
            f"datetime.fromisoformat('{t.isoformat()}'));"
            "print(hashlib.sha256(json.dumps(r,sort_keys=True).encode()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert out == _digest(FleetModel(seed=5, size=30, drift_rate=0.3).records_at(t))


@pytest.mark.parametrize("size", [40, 400])
def test_about_size_instances_alive(size: int) -> None:
    model = FleetModel(seed=3, size=size)
    counts = [len(model.ids_at(ORIGIN + timedelta(days=d))) for d in range(0, 60, 6)]
    assert 0.6 * size <= statistics.mean(counts) <= 1.4 * size, counts


def test_lifecycle_covers_documented_behaviour() -> None:
    model = FleetModel(seed=1, size=60)
    statuses: Counter = Counter()
    prices: dict[int, set] = {}
    reliability: dict[int, set] = {}
    idle = busy = 0
    for minutes in range(0, 20 * 24 * 60, 20):
        for r in model.records_at(ORIGIN + timedelta(minutes=minutes)):
            statuses[r["actual_status"]] += 1
            if r["is_bid"]:
                prices.setdefault(r["id"], set()).add(r["dph_base"])
            reliability.setdefault(r["host_id"], set()).add(r["reliability2"])
            if r["actual_status"] == "running":
                idle += r["gpu_util"] < 0.05
                busy += r["gpu_util"] > 0.4
            if r["actual_status"] in ("offline", "unknown"):
                assert r["intended_status"] in INTENDED
    for status in (None, "created", "loading", "running", "stopped", "exited", "offline",
                   "unknown"):
        assert statuses[status] > 0, f"never saw actual_status={status}"
    assert statuses["running"] > statuses["stopped"]
    assert any(len(p) > 2 for p in prices.values()), "bid prices never changed"
    assert all(len(v) > 1 for v in reliability.values()), "reliability2 never drifted"
    assert idle > 0 and busy > idle


def test_outages_last_a_realistic_time() -> None:
    model = FleetModel(seed=2, size=80)
    durations = []
    for hi in range(len(model.hosts)):
        for day in range(60):
            o = model.host_pool.outage(hi, day)
            if o is not None:
                durations.append(o[1] - o[0])
                assert o[2] in ("offline", "unknown")
    assert durations
    assert min(durations) >= 15 * 60 - 1 and max(durations) <= 10 * 3600 + 1
    assert statistics.median(durations) > 30 * 60


def test_destroyed_instance_has_no_record() -> None:
    model = fleet(4)
    t0 = ORIGIN + timedelta(days=10)
    earlier, later = set(model.ids_at(t0)), set(model.ids_at(t0 + timedelta(days=31)))
    gone = earlier - later
    assert gone == earlier, "every instance is destroyed within the 30-day lifetime cap"
    assert all(model.record(i, t0 + timedelta(days=31)) is None for i in list(gone)[:5])
    assert model.record(1, t0) is None


def test_drift_new_fields_and_broken_records() -> None:
    t = ORIGIN + timedelta(days=2)
    clean = FleetModel(seed=9, size=60).records_at(t)
    drifted = FleetModel(seed=9, size=60, drift_rate=1.0, new_field_rate=1.0).records_at(t)
    assert [r["id"] for r in drifted] == [r["id"] for r in clean]
    assert all(isinstance(r["cuda_max_good"], str) for r in drifted)
    assert all(isinstance(r["hosting_type"], str) for r in drifted)
    assert all(isinstance(r["ports"], dict) for r in drifted)
    assert all(isinstance(r["image_args"], str) for r in drifted)
    assert {type(r["os_version"]) for r in drifted} <= {str, type(None)}
    assert all("gpu_clock_mhz" in r for r in drifted)
    for c, d in zip(clean, drifted, strict=True):
        if isinstance(c["gpu_util"], float) and c["gpu_util"] > 0:
            assert math.isclose(d["gpu_util"], c["gpu_util"] * 100, rel_tol=1e-6)
    broken = FleetModel(seed=9, size=60, broken_rate=1.0).records_at(t)
    assert len(broken) == len(clean)
    assert all(not isinstance(r, dict) or not isinstance(r["id"], int) for r in broken)
    assert {type(r) for r in broken} >= {dict, str}
    some = FleetModel(seed=9, size=60, drift_rate=0.2).records_at(t)
    assert 0 < sum(r != c for r, c in zip(some, clean, strict=True)) < len(clean)


def test_secret_values_cover_every_served_secret() -> None:
    model = FleetModel(seed=6, size=40)
    t = ORIGIN + timedelta(days=1)
    secrets = model.secret_values_at(t)
    records = model.records_at(t)
    assert {r["jupyter_token"] for r in records} <= secrets
    env_values = {v for r in records for name, v in r["extra_env"] if name.endswith(
        ("TOKEN", "KEY"))}
    assert env_values and env_values <= secrets
    assert any(s.startswith("hf_") for s in secrets)


def test_charges_match_the_served_billing_rates() -> None:
    model = FleetModel(seed=8, size=25)
    a = ORIGIN + timedelta(days=4)
    b = a + timedelta(hours=6)
    charges = {c.instance_id: c for c in model.charges(a, b)}
    assert charges
    step = 60
    riemann: Counter = Counter()
    disk: Counter = Counter()
    for s in range(0, 6 * 3600, step):
        for r in model.records_at(a + timedelta(seconds=s + step / 2)):
            riemann[r["id"]] += r["instance"]["gpuCostPerHour"] * step / 3600
            disk[r["id"]] += r["instance"]["diskHour"] * step / 3600
    for iid, c in charges.items():
        assert math.isclose(c.gpu_amount, riemann[iid], rel_tol=0.03, abs_tol=0.05), iid
        assert math.isclose(c.disk_amount, disk[iid], rel_tol=0.03, abs_tol=0.002), iid
    mid = a + timedelta(hours=2)
    halves = Counter()
    for part in (model.charges(a, mid), model.charges(mid, b)):
        for c in part:
            halves[c.instance_id] += c.amount
    for iid, c in charges.items():
        assert math.isclose(c.amount, halves[iid], rel_tol=1e-9)


def test_a_thousand_instance_fleet_lists_most_of_them() -> None:
    """Its speed is a benchmark figure (`vast-pipeline bench history`), not a test."""
    model = FleetModel(seed=1, size=1000)
    t = ORIGIN + timedelta(days=40)
    records = model.records_at(t)
    assert len(records) > 500
    assert len({r["id"] for r in records}) == len(records)


def _overlapping_outages(model: FleetModel, days: int) -> list[tuple[int, float, float]]:
    """(host, from, to) around each pair of host outages that overlap (day d-1 into day d)."""
    first = math.floor(ORIGIN.timestamp() / 86400)
    found = []
    for hi in range(len(model.hosts)):
        for day in range(first, first + days):
            before, today = model.host_pool.outage(hi, day - 1), model.host_pool.outage(hi, day)
            if before and today and today[0] < before[1]:
                found.append((hi, before[0] - 1800, max(before[1], today[1]) + 1800))
    return found


def test_charges_agree_with_records_when_outages_overlap() -> None:
    model = FleetModel(seed=0, size=200)
    windows = [w for w in _overlapping_outages(model, 366) if w[0] == 17]
    assert len(windows) == 2, "seed 0 has two overlapping outage pairs on host 17"
    step = 10.0
    checked = 0
    for hi, a, b in windows:
        charges = {c.instance_id: c for c in model.charges(a, b)}
        for lc in model._overlapping(a, b):
            if lc.machine.host_index != hi:
                continue
            gpu = disk = 0.0
            t = a + step / 2
            while t < b:
                r = model.record(lc.id, t)
                if r is not None:
                    gpu += r["instance"]["gpuCostPerHour"] * step / 3600
                    disk += r["instance"]["diskHour"] * step / 3600
                t += step
            c = charges[lc.id]
            # Each status change costs at most one step of error at the highest rate.
            assert math.isclose(c.gpu_amount, gpu, abs_tol=12 * step / 3600 * lc.base_price)
            assert math.isclose(c.disk_amount, disk,
                                abs_tol=12 * step / 3600 * lc.storage_total_cost)
            assert c.disk_hours <= (b - a) / 3600 + 1e-9 and c.gpu_hours >= 0
            checked += 1
    assert checked >= 3


@fast
@given(st.integers(min_value=0, max_value=50))
def test_overlay_pieces_run_forward_and_match_outage_at(seed: int) -> None:
    model = FleetModel(seed=seed, size=60)
    for hi, a, b in _overlapping_outages(model, 120):
        pieces = list(overlay(model.host_pool, hi, a, b, "running"))
        assert pieces[0][0] == a and pieces[-1][1] == b
        for (s, e, status), nxt in zip(pieces, [*pieces[1:], None], strict=True):
            assert s < e, pieces
            assert nxt is None or nxt[0] == e
            assert status == (model.outage_at(hi, (s + e) / 2) or "running")
            assert status == (model.outage_at(hi, s) or "running")
