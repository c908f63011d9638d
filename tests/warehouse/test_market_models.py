"""The market models (market_offers, market_prices, paid_vs_market, market_history,
savings_opportunities and their report marts) on real DuckDB over real Parquet: the
hand-made fleet, account `mkt` and the fixed market of tests/support/market_fixtures.py,
built by the real warehouse build. Expected rows come from tests/support/market_oracle.py
(plain Python), never from the product's SQL.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from pipeline.market.settings import MarketSettings
from tests.support import market_oracle as oracle
from tests.support.market_fixtures import (
    SNAPSHOTS,
    UNCOMMITTED_AT,
    fixed_market,
    fleet_with_market,
    market_times,
    snapshot_offers,
)
from tests.support.report_fixtures import query
from tests.support.warehouse import build_at_cadence, same_sources, snapshot_of_models

SAVINGS_COLUMNS = ("label", "gpu_name", "num_gpus", "current_per_hour", "offer_id",
                   "offer_machine_id", "offer_host_id", "offer_per_hour", "offer_reliability",
                   "offer_geolocation", "seen_share", "monthly_savings", "savings_pct")


@pytest.fixture(scope="module")
def market_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    home = tmp_path_factory.mktemp("market") / "home"
    times = fleet_with_market(home)
    build_at_cadence(home, full=True)
    return home, times


def _rows(home: Path, sql: str) -> list[dict]:
    con_rows = query(home, f"SELECT * FROM ({sql})")
    names = [r[0] for r in query(home, f"DESCRIBE ({sql})")]
    return [dict(zip(names, row, strict=True)) for row in con_rows]


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None
                                         and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))


def test_market_offers_is_the_contracts_shape(market_home):
    home, times = market_home
    rows = _rows(home, "SELECT * FROM market_offers")
    # every row written, the uncommitted snapshot's too (the staging view is the files)
    assert len(rows) == len(oracle.all_offers(times)) + len(
        snapshot_offers(SNAPSHOTS, UNCOMMITTED_AT))
    assert {"snapshot_id", "snapshot_at", "offer_id", "machine_id", "host_id", "gpu_name",
            "num_gpus", "offer_type", "dph_base", "dph_total", "min_bid", "storage_cost",
            "disk_space", "reliability", "verification", "geolocation", "country", "dlperf",
            "inet_down", "inet_up", "duration", "rentable"} <= set(rows[0])
    assert {r["offer_type"] for r in rows} == {"on-demand", "bid"}
    one = next(r for r in rows if r["machine_id"] == 9001 and r["offer_type"] == "on-demand")
    assert one["country"] == one["geolocation"].rsplit(",", 1)[1].strip()


def test_market_prices_are_linear_quantiles_per_snapshot_model_and_type(market_home):
    home, times = market_home
    expected = oracle.market_prices(times)
    rows = _rows(home, "SELECT * FROM market_prices")
    got = {(r["snapshot_at"], r["gpu_name"], r["offer_type"]): r for r in rows}
    # the snapshot whose log row is missing has no row; every committed one has its groups
    assert set(got) == set(expected)
    assert UNCOMMITTED_AT not in {k[0] for k in got}
    for key, want in expected.items():
        row = got[key]
        assert row["offers"] == want["offers"], key
        assert _close(row["min_per_gpu_hour"], want["min"]), key
        for name in oracle.QUANTILES:
            assert _close(row[f"{name}_per_gpu_hour"], want[name]), (key, name)


def test_quantile_oracle_interpolates():
    """The oracle's own quantile, on values worked out by hand."""
    assert oracle.quantile([1.0, 2.0, 3.0, 4.0], 0.25) == pytest.approx(1.75)
    assert oracle.quantile([4.0, 1.0, 3.0], 0.5) == 3.0
    assert oracle.quantile([10.0, 20.0], 0.9) == pytest.approx(19.0)


def test_paid_vs_market_per_instance_day(market_home):
    home, times = market_home
    expected = oracle.paid_vs_market(times)
    rows = _rows(home, "SELECT * FROM paid_vs_market")
    got = {(r["day"], r["account"], r["instance_id"]): r for r in rows}
    assert set(got) == set(expected)
    # the interruptible instance is compared with the bid market, the others on-demand
    assert {r["offer_type"] for r in rows if r["instance_id"] == 102} == {"bid"}
    assert {r["offer_type"] for r in rows if r["instance_id"] != 102} == {"on-demand"}
    for key, want in expected.items():
        for column, value in want.items():
            assert got[key][column] == value if isinstance(value, str) else \
                _close(got[key][column], value), (key, column)


def test_savings_opportunities_equal_the_rules(market_home):
    home, times = market_home
    expected = oracle.savings(times)
    rows = _rows(home, "SELECT * FROM savings_opportunities")
    got = {(r["account"], r["instance_id"]): r for r in rows}
    assert set(got) == set(expected)
    for key, want in expected.items():
        for column in SAVINGS_COLUMNS:
            value = want[column]
            assert (got[key][column] == value if not isinstance(value, float)
                    else _close(got[key][column], value)), (key, column)


def test_savings_fixture_reaches_every_rule(market_home):
    """The fixed market was placed to exercise each rule (see market_fixtures): the oracle's
    answer shows each of them happened, so the comparison above is not vacuous."""
    _home, times = market_home
    rows = oracle.savings(times)
    assert set(rows) == {("main", 101), ("main", 105), ("lab", 201), ("mkt", 302)}
    assert rows[("main", 101)]["offer_machine_id"] == 9000  # price tie, reliability tie
    assert rows[("main", 105)]["offer_machine_id"] == 9022  # not its own machine
    assert rows[("main", 105)]["seen_share"] == 0.5  # at the share, and window (t-24h, t]
    assert rows[("lab", 201)]["offer_id"] == rows[("mkt", 302)]["offer_id"]  # one offer, two


def test_thresholds_come_from_the_build(market_home, tmp_path):
    """`[market]` thresholds reach the SQL: a stricter saving and seen share change rows."""
    home, times = market_home
    strict = same_sources(home, tmp_path)
    build_at_cadence(strict, market=MarketSettings(min_monthly_savings=70, min_seen_share=0.6))
    th = oracle.Thresholds(min_monthly_savings=70, min_seen_share=0.6)
    expected = oracle.savings(times, th)
    got = {(r["account"], r["instance_id"]): r
           for r in _rows(strict, "SELECT * FROM savings_opportunities")}
    assert set(got) == set(expected) != set(oracle.savings(times))
    for key, want in expected.items():
        assert _close(got[key]["monthly_savings"], want["monthly_savings"])
        assert got[key]["offer_id"] == want["offer_id"]


def test_no_advice_while_the_history_is_shorter_than_the_lookback(tmp_path):
    home = tmp_path / "home"
    times = fleet_with_market(home, first=SNAPSHOTS - 6)
    build_at_cadence(home)
    (history,) = _rows(home, "SELECT * FROM market_history")
    assert history["snapshots"] == 6
    assert _close(history["span_hours"], (times[-1] - times[0]).total_seconds() / 3600)
    assert history["lookback_hours"] == 24 and not history["has_lookback"]
    assert oracle.savings(times) == {}
    assert _rows(home, "SELECT * FROM savings_opportunities") == []
    # the prices are there all the same
    assert len(_rows(home, "SELECT * FROM market_prices")) == len(oracle.market_prices(times))


def test_no_market_at_all_builds_empty_market_models(tmp_path):
    home = tmp_path / "home"
    fleet_with_market(home, market=False)
    build_at_cadence(home)
    for model in ("market_offers", "market_prices", "paid_vs_market", "market_history",
                  "savings_opportunities"):
        assert query(home, f"SELECT count(*) FROM {model}") == [(0,)], model


def test_incremental_build_after_one_new_snapshot_equals_a_full_build(tmp_path):
    home = tmp_path / "home"
    fleet_with_market(home, end=SNAPSHOTS - 1)
    build_at_cadence(home, full=True)
    # the newest day's file is written again with one more snapshot; the day before stays
    fixed_market(home, first=SNAPSHOTS - 24)
    times = market_times()
    result = build_at_cadence(home)
    assert result.updated_in_place and not result.full
    # only the changed market day was recomputed: its snapshots' prices, its paid rows
    newest_day = times[-1].date()
    day_prices = [k for k in oracle.market_prices(times) if k[0].date() == newest_day]
    assert result.rows_written["market_prices"] == len(day_prices)
    assert result.rows_written["paid_vs_market"] == sum(
        1 for k in oracle.paid_vs_market(times) if k[0] == newest_day)
    full = same_sources(home, tmp_path / "full")
    build_at_cadence(full, full=True)
    assert snapshot_of_models(home) == snapshot_of_models(full)
    shutil.rmtree(full)
