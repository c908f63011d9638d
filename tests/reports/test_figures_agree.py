"""One figure, one definition: the demo's console, the reports it writes, the FOCUS export
and the warehouse say the same thing for the same window.

Runs the real demo (a subprocess on the embedded simulator over HTTP), then reads each
output the way a person would: the console line, the report's CSV summary, the FOCUS
Parquet file, and `spend_daily` through DuckDB. Totals rounded to cents must be equal.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.support.cli import run_cli

CENT = Decimal("0.01")


def _cents(value: object) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_EVEN)


def _money(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("agree") / "home"
    home.mkdir()
    # 20 instances: enough for the market to hold persistent cheaper offers for some
    result = run_cli("demo", "--days", "3", "--size", "20", home=home, timeout=600)
    assert result.returncode == 0, result.stderr
    return home, result.stdout


def _window(stdout: str) -> tuple[date, date, Decimal, Decimal]:
    match = re.search(r"spend (\d{4}-\d\d-\d\d) \.\. (\d{4}-\d\d-\d\d): (\$[\d,.]+), "
                      r"(\$[\d,.]+) of it billed", stdout)
    assert match, stdout
    return (date.fromisoformat(match.group(1)), date.fromisoformat(match.group(2)),
            _money(match.group(3)), _money(match.group(4)))


def _summary(home: Path, kind: str, d0: date, d1: date) -> dict[str, str]:
    path = home / "reports" / "demo" / f"{kind}_{d0}_{d1}_summary.csv"
    with path.open() as f:
        return {row["metric"]: row["value"] for row in csv.DictReader(f)}


def test_console_report_focus_and_spend_daily_agree_to_the_cent(demo: tuple[Path, str]) -> None:
    home, stdout = demo
    d0, d1, console_spend, console_billed = _window(stdout)
    report = _summary(home, "cost", d0, d1)
    focus = pq.read_table(home / "exports" / f"focus_{d0}_{d1}.parquet")
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        [(spend, billed)] = con.execute(
            "select sum(total_cost), sum(total_cost) filter (where cost_source = 'billed') "
            "from spend_daily where day between ? and ?", [d0, d1]).fetchall()
    focus_total = pc.sum(focus["BilledCost"]).as_py()
    focus_billed = pc.sum(pc.filter(focus["BilledCost"],
                                    pc.equal(focus["x_CostSource"], "billed"))).as_py()
    assert spend > 0 and billed > 0  # the demo fetched its bills
    assert console_spend == _cents(report["window_spend"]) == _cents(focus_total) \
        == _cents(spend)
    assert console_billed == _cents(report["billed_cost"]) == _cents(focus_billed) \
        == _cents(billed)


def test_console_availability_and_incidents_are_the_reports(demo: tuple[Path, str]) -> None:
    home, stdout = demo
    d0, d1, _spend, _billed = _window(stdout)
    match = re.search(rf"fleet availability {d0} \.\. {d1}: ([\d.]+)% with (\d+) incidents "
                      r"\((\d+) ongoing\)", stdout)
    assert match, stdout
    report = _summary(home, "reliability", d0, d1)
    assert f"{100 * float(report['availability']):.2f}" == match.group(1)
    assert int(float(report["incidents"])) == int(match.group(2))


def test_console_burn_and_credit_are_the_cost_reports(demo: tuple[Path, str]) -> None:
    home, stdout = demo
    d0, d1, _spend, _billed = _window(stdout)
    match = re.search(r"burn rate now: \$([\d,.]+)/h = \$([\d,.]+)/month \((\d+) instances "
                      r"running\); credit \$([\d,.]+) lasts ([\d,.]+) days", stdout)
    assert match, stdout
    report = _summary(home, "cost", d0, d1)
    assert _money(match.group(1)) == Decimal(report["burn_rate_per_hour"]).quantize(
        Decimal("0.001"), rounding=ROUND_HALF_EVEN)
    assert _money(match.group(2)) == _cents(report["burn_per_month"])
    assert _money(match.group(4)) == _cents(report["credit_balance"])
    assert f"{float(report['runway_days']):,.1f}" == match.group(5)


def test_console_savings_are_the_cost_reports_market_section(demo: tuple[Path, str]) -> None:
    """The console's savings line says what the cost report's market section says, and the
    section's table (every row, while there are at most ten) adds up to it: the demo has
    real advice to show."""
    home, stdout = demo
    d0, d1, _spend, _billed = _window(stdout)
    markdown = (home / "reports" / "demo" / f"cost_{d0}_{d1}.md").read_text()
    with (home / "reports" / "demo" / f"cost_{d0}_{d1}_market_savings.csv").open() as f:
        rows = list(csv.DictReader(f))
    pattern = r"(\d+) running instances? could save (\$[\d,.]+)/month in all"
    console = re.search(rf"market: {pattern}", stdout)
    assert console, stdout  # the demo fleet pays above market on some machines
    report = re.search(pattern, markdown)
    assert report and console.groups() == report.groups()
    count, total = int(console.group(1)), _money(console.group(2))
    assert count > 0 and len(rows) == min(count, 10)
    if count <= 10:
        assert total == _cents(sum(Decimal(r["monthly_savings"]) for r in rows))
