"""The cost report's Market sections in a real headless Chromium, with the network off:
the chart is drawn, the savings table shows the independent computation's figures, the
caveats are on the page and nothing tried to leave the machine."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from pipeline.reports import write_report
from pipeline.reports.model import fmt
from tests.support import market_oracle as oracle
from tests.support.browser import chromium, offline_tab
from tests.support.market_fixtures import fleet_with_market
from tests.support.warehouse import build_at_cadence

D0, D1 = date(2026, 11, 16), date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 23, 59, tzinfo=UTC)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("market_browser") / "home"
    times = fleet_with_market(home)
    build_at_cadence(home, full=True)
    out = tmp_path_factory.mktemp("html")
    (path,) = write_report(home, "cost", date_from=D0, date_to=D1, fmt="html", out_dir=out,
                           now=NOW)
    with chromium() as browser:
        offline = offline_tab(browser)
        tab, blocked, errors = offline.page, offline.blocked, offline.errors
        tab.goto(path.as_uri(), wait_until="load")
        chart = tab.eval_on_selector("svg.chart-market", """e => {
            const r = e.getBoundingClientRect();
            return {paths: e.querySelectorAll('path').length, width: r.width,
                    height: r.height, text: e.textContent};
        }""")
        cells = tab.eval_on_selector_all(
            "table[data-table=market_savings] tbody tr", """rows => rows.map(tr => {
                const out = {instance: tr.children[0].textContent.trim()};
                tr.querySelectorAll('td[data-col]').forEach(td => {
                    out[td.dataset.col] = {value: td.dataset.value,
                                           text: td.textContent.trim()};
                });
                return out;
            })""")
        sections = tab.eval_on_selector_all("section", """els => els.map(e => (
            {title: e.querySelector('h2').textContent, text: e.innerText}))""")
        offline.context.close()
    return {"times": times, "blocked": blocked, "errors": errors, "chart": chart,
            "cells": cells, "sections": {s["title"]: s["text"] for s in sections}}


def test_nothing_leaves_the_machine_and_no_error(page):
    assert page["blocked"] == [] and page["errors"] == []


def test_the_market_chart_is_drawn_with_every_gpu_model(page):
    chart = page["chart"]
    assert chart["paths"] > 3 and chart["width"] > 200 and chart["height"] > 80
    for gpu, kind in oracle.by_gpu(page["times"], D0, D1):
        assert f"{gpu} ({kind})" in chart["text"]


def test_the_savings_table_shows_the_independent_figures(page):
    expected = oracle.savings(page["times"])
    shown = {row["instance"]: row for row in page["cells"]}
    assert set(shown) == {f"{a}/{i}" for a, i in expected}
    for (account, iid), want in expected.items():
        row = shown[f"{account}/{iid}"]
        for column, unit in (("monthly_savings", "usd"), ("current_per_hour", "usd_per_hour"),
                             ("offer_per_hour", "usd_per_hour"), ("seen_share", "share")):
            assert float(row[column]["value"]) == pytest.approx(want[column], rel=1e-12)
            assert row[column]["text"] == fmt(want[column], unit)


def test_the_caveats_are_on_the_page(page):
    text = page["sections"]["Cheaper offers on the market now"]
    assert "data on the old machine's disk does not move" in text
    assert "an offer may be gone by the time you look" in text
    assert "one offer may be the best for several instances" in text
    assert "paid above the median" in page["sections"]["Market"]
