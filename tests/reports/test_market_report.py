"""The cost report's Market sections: their figures against an independent computation
(tests/support/market_oracle.py, plain Python over the fixture's offers and fleet), the
wording when the history is shorter than the lookback or there is no market at all, and
the same figures in Markdown and CSV."""

from __future__ import annotations

import csv
import math
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipeline.reports import build_report, write_reports
from pipeline.reports.market import CAVEATS, NO_MARKET, TOP_SAVINGS
from pipeline.reports.model import fmt
from tests.support import market_oracle as oracle
from tests.support.market_fixtures import SNAPSHOTS, fleet_with_market
from tests.support.warehouse import build_at_cadence

D0, D1 = date(2026, 11, 16), date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 23, 59, tzinfo=UTC)
BY_GPU = ("gpu_hours", "paid_per_gpu_hour", "market_p25_per_gpu_hour",
          "market_median_per_gpu_hour", "market_p75_per_gpu_hour", "market_snapshots",
          "share_above_median", "premium_pct")
SAVINGS = ("current_per_hour", "offer_per_hour", "monthly_savings", "savings_pct",
           "offer_machine_id", "offer_host_id", "offer_reliability", "seen_share")


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[datetime]]:
    home = tmp_path_factory.mktemp("market_report") / "home"
    times = fleet_with_market(home)
    build_at_cadence(home, full=True)
    return home, times


def _close(a: object, b: object) -> bool:
    if isinstance(b, float):
        return isinstance(a, float) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _section(report, title: str):
    return next(s for s in report.sections if s.title == title)


@pytest.mark.parametrize(("d0", "d1", "account"), [
    (D0, D1, None), (date(2026, 11, 20), D1, None), (D0, D1, "main"), (D0, D1, "lab")])
def test_paid_against_the_market_per_gpu_model(market, d0, d1, account):
    home, times = market
    report = build_report(home, "cost", date_from=d0, date_to=d1, account=account, now=NOW)
    expected = oracle.by_gpu(times, d0, d1, account)
    section = _section(report, "Market")
    shown = {(r["gpu_name"], r["offer_type"]): r for r in section.table.rows}
    assert set(shown) == set(expected) and expected
    for key, figures in expected.items():
        bad = {f: (shown[key][f], v) for f, v in figures.items() if not _close(shown[key][f], v)}
        assert bad == {}, key
        # the text states each model's share above the median as the table does
        assert (f"{key[0]} ({key[1]}): {fmt(figures['share_above_median'], 'share')} of "
                f"{fmt(figures['gpu_hours'], 'hours')} paid above the median") in section.text
    assert section.chart is not None and "chart-market" in section.chart()


@pytest.mark.parametrize("account", [None, "main"])
def test_savings_table_total_and_caveats(market, account):
    home, times = market
    report = build_report(home, "cost", date_from=D0, date_to=D1, account=account, now=NOW)
    section = _section(report, "Cheaper offers on the market now")
    expected = {k: v for k, v in oracle.savings(times).items() if account in (None, k[0])}
    ranked = sorted(expected.items(), key=lambda kv: (-kv[1]["monthly_savings"], kv[0]))
    rows = section.table.rows
    assert [(r["account"], r["instance_id"]) for r in rows] == [k for k, _ in ranked][:TOP_SAVINGS]
    for row, (_key, want) in zip(rows, ranked, strict=False):
        bad = {f: (row[f], want[f]) for f in SAVINGS if not _close(row[f], want[f])}
        assert bad == {}
    sharing = {}
    for want in expected.values():
        sharing[want["offer_id"]] = sharing.get(want["offer_id"], 0) + 1
    assert [r["instances_on_offer"] for r in rows] == [sharing[r["offer_id"]] for r in rows]
    total = sum(v["monthly_savings"] for v in expected.values())
    assert f"could save {fmt(total, 'usd')}/month in all" in section.text
    assert "counts each instance's best offer on its own" in section.text
    assert CAVEATS in section.text
    assert "at least 50% of the 24 market snapshots of the last 24 h" in section.text


def test_not_enough_history_says_how_much_there_is(tmp_path):
    home = tmp_path / "home"
    times = fleet_with_market(home, first=SNAPSHOTS - 6)
    build_at_cadence(home)
    report = build_report(home, "cost", date_from=D0, date_to=D1, now=NOW)
    section = _section(report, "Cheaper offers on the market now")
    hours = (times[-1] - times[0]).total_seconds() / 3600
    assert section.text.startswith(
        f"Not enough market history yet ({hours:,.0f} h of the 24 h lookback)")
    assert section.table is None
    # the prices of the hours there are still show
    assert _section(report, "Market").table.rows


def test_no_market_data_invents_nothing(tmp_path):
    home = tmp_path / "home"
    fleet_with_market(home, market=False)
    build_at_cadence(home)
    report = build_report(home, "cost", date_from=D0, date_to=D1, now=NOW)
    market = [s for s in report.sections if s.title in ("Market",
                                                        "Cheaper offers on the market now")]
    assert [(s.text, s.table, s.chart) for s in market] == [(NO_MARKET, None, None)]


def test_markdown_and_csv_carry_the_market_figures(market, tmp_path):
    home, times = market
    paths = write_reports(home, "cost", date_from=D0, date_to=D1, formats=("md", "csv"),
                          out_dir=tmp_path, now=NOW)
    md = paths[0].read_text(encoding="utf-8")
    expected = oracle.savings(times)
    assert "## Market" in md and "## Cheaper offers on the market now" in md
    for (account, iid), want in expected.items():
        assert f"| {account}/{iid} |" in md
        assert fmt(want["monthly_savings"], "usd") in md
    stem = "cost_2026-11-16_2026-11-20"
    with open(tmp_path / f"{stem}_market_savings.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["instance"] for r in rows} == {f"{a}/{i}" for a, i in expected}
    for r in rows:
        account, iid = r["instance"].split("/")
        assert float(r["monthly_savings"]) == pytest.approx(
            expected[(account, int(iid))]["monthly_savings"], rel=1e-12)
    with open(tmp_path / f"{stem}_market_by_gpu.csv", encoding="utf-8") as f:
        by_gpu = {(r["gpu"], r["offer_type"]): r for r in csv.DictReader(f)}
    for key, want in oracle.by_gpu(times, D0, D1).items():
        assert float(by_gpu[key]["paid_per_gpu_hour"]) == pytest.approx(
            want["paid_per_gpu_hour"], rel=1e-12)
