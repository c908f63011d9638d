"""`vast-pipeline metrics` on a real built warehouse, scraped over HTTP.

Every figure is compared with tests/support/metrics_fixtures.py's plain-Python oracle,
never with the product's SQL; the exposition is parsed by prometheus_client's parser and
checked by Prometheus's own `promtool check metrics`.
"""

from __future__ import annotations

import math
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from pipeline.metrics.catalog import METRICS, exported_name
from tests.support.metrics_fixtures import (
    BILL_FETCHED_AT,
    FAILED_COLLECTIONS,
    LAST,
    expected_accounts,
    expected_instances,
    expected_market,
    expected_savings,
    market_committed,
    metrics_home,
    parse,
    scrape,
    serving,
)

REPO = Path(__file__).resolve().parents[2]
INSTANCE_METRICS = {"vast_instance_up": "up", "vast_instance_gpus": "gpus",
                    "vast_instance_burn_rate_dollars_per_hour": "burn",
                    "vast_instance_gpu_utilisation_ratio": "util", "vast_instance_idle": "idle",
                    "vast_instance_reliability2": "reliability2"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, float]:
    """The metrics home, and the moments just before and after its build."""
    home = tmp_path_factory.mktemp("metrics") / "home"
    home.mkdir()
    before = time.time()
    metrics_home(home)
    return home, before, time.time()


@pytest.fixture(scope="module")
def scraped(built: tuple[Path, float, float]) -> str:
    with serving(built[0]) as url:
        return scrape(url)


def _by(samples: list[tuple[dict[str, str], float]], label: str) -> dict[str, float]:
    return {labels[label]: value for labels, value in samples}


def test_per_instance_metrics_match_the_newest_snapshot(scraped: str) -> None:
    samples = parse(scraped)
    expected = expected_instances()
    assert {"0.0", "1.0"} <= {str(i.up) for i in expected.values()}  # up and down both here
    assert any(i.up is None for i in expected.values())  # and some with no up sample
    for name, field in INSTANCE_METRICS.items():
        want = {iid: getattr(i, field) for iid, i in expected.items()
                if getattr(i, field) is not None}
        got = _by(samples[name], "instance_id")
        assert got.keys() == want.keys(), name
        for iid, value in want.items():
            assert math.isclose(got[iid], value, rel_tol=1e-9, abs_tol=1e-12), (name, iid)
        for labels, _ in samples[name]:
            assert labels == expected[labels["instance_id"]].labels


def test_per_account_metrics(scraped: str) -> None:
    samples = parse(scraped)
    for account, want in expected_accounts().items():
        assert _by(samples["vast_account_credit_balance_dollars"], "account")[account] \
            == want["credit"]
        assert math.isclose(_by(samples["vast_account_burn_rate_dollars_per_hour"],
                                "account")[account], want["burn"])
        assert math.isclose(_by(samples["vast_account_runway_seconds"], "account")[account],
                            want["runway"])
        assert _by(samples["vast_account_snapshot_timestamp_seconds"], "account")[account] \
            == LAST.timestamp()
    assert _by(samples["vast_account_bill_fetched_timestamp_seconds"], "account") == {
        "main": BILL_FETCHED_AT.timestamp()}
    assert _by(samples["vast_account_collection_failures"], "account") == {
        "main": 0.0, "lab": float(FAILED_COLLECTIONS)}
    firing = {(labels["account"], labels["rule"]): value
              for labels, value in samples["vast_account_alerts_firing"]}
    # lab failed 3 times in a row, past the default threshold of 2: collection_failing fires
    assert firing[("lab", "collection_failing")] == 1.0
    assert firing[("main", "collection_failing")] == 0.0
    assert sum(firing.values()) == 1.0


def test_market_metrics(scraped: str) -> None:
    samples = parse(scraped)
    got = {(labels["gpu_name"], labels["offer_type"], labels["statistic"]): value
           for labels, value in samples["vast_market_gpu_price_dollars_per_hour"]}
    want = expected_market()
    assert {kind for _, kind, _ in want} == {"on-demand", "bid"}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert math.isclose(got[key], value, rel_tol=1e-9), key
    assert samples["vast_market_snapshot_timestamp_seconds"] == [
        ({}, market_committed()[-1].timestamp())]
    savings = _by(samples["vast_account_savings_dollars_per_month"], "account")
    want_savings = expected_savings()
    assert savings.keys() == want_savings.keys() and want_savings["main"] > 0
    for account, value in want_savings.items():
        assert math.isclose(savings[account], value, rel_tol=1e-9), account


def test_collector_and_build_metrics(scraped: str, built: tuple[Path, float, float]) -> None:
    _, before, after = built
    samples = parse(scraped)
    assert _by(samples["vast_collector_last_success_timestamp_seconds"], "account") == {
        "main": LAST.timestamp(), "lab": LAST.timestamp()}
    [(_, built_at)] = samples["vast_warehouse_build_timestamp_seconds"]
    assert before <= built_at <= after
    [(_, seconds)] = samples["vast_warehouse_build_duration_seconds"]
    assert 0 < seconds <= after - before
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert samples["vast_pipeline_build_info"] == [({"version": version}, 1.0)]


def test_every_declared_metric_is_exported_under_the_naming_rules(scraped: str) -> None:
    samples = parse(scraped)
    names = {exported_name(m) for m in METRICS}
    assert set(samples) == names
    for name in names:
        assert name.startswith("vast_")
        assert not name.endswith("_total")  # every metric is a gauge: none only counts up
    assert "# TYPE vast_instance_up gauge" in scraped


def test_promtool_accepts_the_exposition(scraped: str) -> None:
    checked = subprocess.run(["promtool", "check", "metrics"], input=scraped, text=True,
                             capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""
