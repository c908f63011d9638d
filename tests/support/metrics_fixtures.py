"""A data home for the metrics tests, what its metrics must say, and a live exporter.

The home is the hand-made report scenario (tests/support/report_fixtures.py) with three
more instances placed at its end, so that the newest snapshot holds every case the up
metric distinguishes: up, down (108 went offline), starting (109 is still loading) and
not meant to run (110 was stopped), a bill of `main` and the fixed market of
tests/support/market_fixtures.py; then the real build, then three
failed collections of `lab` (through the real alert hook, so the alert state counts them
and collection_failing fires). `expected_*` work out every figure in plain Python from the
scenario's own instances, under docs/semantics.md's rules; nothing here reads the
product's SQL.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.bill_fixtures import item, write_bill
from tests.support.market_fixtures import fixed_market, market_times
from tests.support.market_oracle import market_prices, savings
from tests.support.report_fixtures import (
    START,
    HistoryWriter,
    Spec,
    build_warehouse,
    scenario_specs,
    snapshot_times,
)

STARTING = (None, "created", "loading")
LAST = snapshot_times()[-1]  # the newest snapshot of both accounts
BILL_DAY = date(2026, 11, 19)
BILL_FETCHED_AT = datetime(2026, 11, 20, 6, 30, tzinfo=START.tzinfo)
FAILED_COLLECTIONS = 3  # of account lab, after its newest snapshot


def metrics_specs() -> list[Spec]:
    """The scenario's instances plus the three whose state at the end matters here."""
    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return START + timedelta(days=day, hours=hour, minutes=minute)

    return [*scenario_specs(), Spec(
        108, "flaky", "A100 SXM4", 2, 5008, 7008, "SE", 1.20, 0.05, util=0.4,
        reliability2=0.91, events=[(at(4, 22), at(5, 0), "offline", "running")]), Spec(
        109, "fresh", "H100 SXM", 1, 5009, 7009, "US", 2.50, 0.02, born=at(4, 23, 15),
        events=[(at(4, 23, 15), at(4, 23, 30), None, "running"),
                (at(4, 23, 30), at(5, 0), "loading", "running")]), Spec(
        110, "paused", "RTX 3090", 1, 5010, 7010, "CA", 0.30, 0.02, account="lab",
        events=[(at(4, 20), at(5, 0), "stopped", "stopped")])]


def metrics_home(home: Path) -> Path:
    """Write the history, build the warehouse for real, then add a bill and the failed
    collections; returns `home`."""
    writer = HistoryWriter(home)
    specs = metrics_specs()
    for t in snapshot_times():
        for account in ("main", "lab"):
            writer.snapshot(account, t, [r for s in specs if s.account == account
                                         and (r := s.record(t)) is not None])
    writer.write()
    fixed_market(home)
    write_bill(home, "main", BILL_DAY, [item(101, "gpu", 19.2, quantity=24.0, unit="hours",
                                             unit_price=0.8)],
               fetch_id="f1", fetched_at=BILL_FETCHED_AT)
    build_warehouse(home)
    fail_collections(home, "lab", FAILED_COLLECTIONS)
    return home


def fail_collections(home: Path, account: str, times: int) -> None:
    """`times` failed collections of `account`, counted by the real alert hook."""
    from pipeline.alerts.hooks import after_collection
    from pipeline.core.config import load_settings

    settings = load_settings({"VAST_PIPELINE_HOME": str(home)})
    for n in range(times):
        after_collection(settings, {account: "HTTP 503 from the API"},
                         LAST + timedelta(minutes=15 * (n + 1)), landed=False)


# --- the oracle -------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceNow:
    labels: dict[str, str]
    up: float | None
    gpus: float
    burn: float
    util: float
    idle: float
    reliability2: float


def _settled(spec: Spec) -> bool:
    return any((r := spec.record(t)) is not None and r["actual_status"] not in STARTING
               for t in snapshot_times() if t <= LAST)


def expected_instances() -> dict[str, InstanceNow]:
    """instance_id -> what its metrics must say at the newest snapshot."""
    out = {}
    for spec in metrics_specs():
        rec = spec.record(LAST)
        if rec is None:
            continue
        actual, meant = rec["actual_status"], rec["intended_status"] == "running"
        up = None
        if meant and actual == "running":
            up = 1.0
        elif meant and _settled(spec):
            up = 0.0
        gpu_billed = actual in ("running", "frozen")
        burn = (rec["dph_base"] if gpu_billed else 0.0) + (
            rec["storage_total_cost"] if actual != "offline" else 0.0)
        out[str(spec.id)] = InstanceNow(
            labels={"account": spec.account, "instance_id": str(spec.id),
                    "label": spec.label or "", "gpu_name": spec.gpu_name,
                    "host_id": str(spec.host_id)},
            up=up, gpus=float(spec.num_gpus), burn=burn, util=rec["gpu_util"],
            idle=1.0 if gpu_billed and rec["gpu_util"] < 0.05 else 0.0,
            reliability2=rec["reliability2"])
    return out


def expected_accounts() -> dict[str, dict[str, float | None]]:
    """account -> its per-account figures (credit, burn, runway in seconds)."""
    out: dict[str, dict[str, float | None]] = {}
    instances = expected_instances().values()
    for account in ("main", "lab"):
        burn = sum(i.burn for i in instances if i.labels["account"] == account)
        out[account] = {"credit": 1000.0, "burn": burn,
                        "runway": 1000.0 / burn * 3600 if burn > 0 else None}
    return out


def expected_market() -> dict[tuple[str, str, str], float]:
    """(gpu_name, offer_type, statistic) -> the newest market snapshot's price per GPU-hour
    (tests/support/market_oracle.py's plain-Python quantiles)."""
    times = market_committed()
    newest = {k: v for k, v in market_prices(times).items() if k[0] == times[-1]}
    return {(gpu, kind, name): row[name] for (_, gpu, kind), row in newest.items()
            for name in ("p25", "median")}


def market_committed() -> list[datetime]:
    """The fixed market's committed snapshot times (the one written without its log row
    is not among them)."""
    return market_times()


def expected_savings() -> dict[str, float]:
    """account -> monthly savings: its instances' best offers summed (0 when none)."""
    out = {"main": 0.0, "lab": 0.0}
    accounts = {s.id: s.account for s in metrics_specs()}
    for (account, instance_id), row in savings(market_committed()).items():
        if accounts.get(instance_id) == account:  # the oracle's fleet has account mkt too
            out[account] += row["monthly_savings"]
    return out


# --- scraping ---------------------------------------------------------------------------


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)], parsed by prometheus_client's own parser."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def metric_names_in(expr: str) -> set[str]:
    """The vast_* metric names a PromQL expression reads."""
    return set(re.findall(r"\bvast_[a-z0-9_]+", expr))


@contextmanager
def serving(home: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`vast-pipeline metrics --listen 127.0.0.1:0` in its own process (`env` added to a
    clean environment); yields the URL of its /metrics, stops the process after."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VAST_", "DAGSTER_"))}
    env = {**clean, "VAST_PIPELINE_HOME": str(home), **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "metrics", "--listen", "127.0.0.1:0", *args],
        env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        found = re.search(r"(http://\S+/metrics)", line)
        if not found:
            process.kill()
            raise AssertionError(f"the exporter did not start: {line}{process.stderr.read()}")
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def scrape(url: str) -> str:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.text

