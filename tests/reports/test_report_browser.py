"""Both HTML reports in a real headless Chromium, with the network off.

Each report is opened from file:// with every non-file request aborted and recorded; the
test checks that nothing tried to leave the machine, nothing logged an error, the charts
are drawn (SVG paths with a visible size, a screenshot that is not blank) and the headline
numbers in the page equal the warehouse's. One browser serves the whole module (Chromium
starts are slow on two shared cores).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.reports import write_report
from tests.support.browser import chromium, offline_tab
from tests.support.report_fixtures import scenario_home
from tests.support.scenario_oracle import Scenario, displays

D0, D1 = date(2026, 11, 16), date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 23, 59, tzinfo=UTC)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scenario_home(tmp_path_factory, "browser")


@pytest.fixture(scope="module")
def pages(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Each report loaded once: what the page showed, requested, logged and looked like."""
    out = tmp_path_factory.mktemp("html")
    files = {kind: write_report(home, kind, date_from=D0, date_to=D1, fmt="html", out_dir=out,
                                now=NOW)[0] for kind in ("cost", "reliability")}
    seen: dict[str, Any] = {}
    with chromium() as browser:
        for kind, path in files.items():
            seen[kind] = _visit(browser, path, out / f"{kind}.png")
    yield seen


def _visit(browser: Any, path: Path, shot: Path) -> dict[str, Any]:
    tab = offline_tab(browser)
    context, page, blocked, errors = tab.context, tab.page, tab.blocked, tab.errors
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_load_state("networkidle")
    charts = page.eval_on_selector_all("svg.chart", """els => els.map(e => {
        const r = e.getBoundingClientRect();
        return {paths: e.querySelectorAll('path').length, width: r.width, height: r.height};
    })""")
    metrics = page.eval_on_selector_all("[data-metric]", """els => els.map(e => (
        {key: e.dataset.metric, value: e.dataset.value, text: e.textContent.trim()}))""")
    png = page.screenshot(path=str(shot), full_page=True)
    context.close()
    return {"blocked": blocked, "requests": requests, "errors": errors, "charts": charts,
            "metrics": metrics, "png": png, "url": path.as_uri()}


@pytest.mark.parametrize("kind", ["cost", "reliability"])
def test_no_request_leaves_the_machine_and_no_error(pages: dict[str, Any], kind: str) -> None:
    seen = pages[kind]
    assert seen["blocked"] == []
    assert [u for u in seen["requests"] if not u.startswith("file://")] == []
    assert seen["requests"][0] == seen["url"]
    assert seen["errors"] == []


@pytest.mark.parametrize(("kind", "charts"), [("cost", 5), ("reliability", 4)])
def test_charts_are_drawn(pages: dict[str, Any], kind: str, charts: int) -> None:
    drawn = pages[kind]["charts"]
    assert len(drawn) == charts
    for chart in drawn:
        assert chart["paths"] > 3 and chart["width"] > 200 and chart["height"] > 80, chart
    assert _distinct_colours(pages[kind]["png"]) > 20


def _distinct_colours(png: bytes) -> int:
    """A blank page has one or two colours; charts and text have many."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width >= 1000 and image.height >= 900
    return len(image.getcolors(maxcolors=1 << 20) or [])


@pytest.mark.parametrize("kind", ["cost", "reliability"])
def test_headline_numbers_equal_the_scenario(pages: dict[str, Any], kind: str) -> None:
    """The page shows what the hand-made scenario works out to (support/scenario_oracle.py)."""
    scenario = Scenario()
    expected = (scenario.cost if kind == "cost" else scenario.reliability)(D0, D1)
    shown = {m["key"]: m for m in pages[kind]["metrics"]}
    assert len(shown) >= 6
    units = {"cost_per_gpu_hour": "usd_per_gpu_hour", "burn_rate_per_hour": "usd_per_hour",
             "availability": "pct", "coverage": "pct", "incidents": "count",
             "down_hours": "hours", "mttr_hours": "hours", "time_to_running_median": "minutes",
                 "runway_days": "days"}
    for key, metric in shown.items():
        value = expected[key]
        if value is None:
            assert metric["value"] == "", key
            continue
        assert float(metric["value"]) == pytest.approx(value, rel=1e-9, abs=1e-12), key
        assert metric["text"] in displays(value, units.get(key, "usd")), key
