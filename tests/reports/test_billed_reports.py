"""The cost report and the FOCUS export once bills are stored, on the hand-made scenario
(tests/support/report_fixtures.py) plus hand-written bills.

Expected figures are worked out here from the bills written and from the scenario's
rules, never by running the report's SQL:
- account `main` is billed every day 2026-11-16..20: instance 101 (gpu 19.20, disk 0.48,
  download 0.10 for 10 GB, upload 0.05 for 5 GB), 104 (gpu 384.00, disk 3.60) and a
  volume 900 (disk 0.50) = 407.93 a day; on 11-17 also instance 999, which no snapshot
  ever saw (gpu 0.42). Billed main = 5 x 407.93 + 0.42 = 2040.07.
- account `lab` is billed 11-16..18: instance 201 (gpu 9.60, disk 0.24, download 0.20 for
  20 GB) = 10.04 a day, 30.12 in all.
- not billed: lab 11-19 and 11-20, estimated. 201 runs the whole scenario at $0.40 + $0.01
  storage an hour: 11-19 is 24 h = $9.84; on 11-20 snapshots stop at 23:45 (the newest
  has no interval yet) and none were taken 10:00..11:45 (the 09:45 interval is capped at
  30 minutes), so 24 - 0.25 - 1.75 = 22 h = $9.02. Estimated = 18.86.
- bandwidth = 5 x 0.15 + 3 x 0.20 = 1.35; window spend = 2040.07 + 30.12 + 18.86.
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.reports import build_report, write_reports
from pipeline.reports.cost import NO_BILLS_NOTE
from pipeline.reports.focus import export_focus
from pipeline.reports.model import fmt
from tests.support.bill_fixtures import scenario_lab_bill, scenario_main_bill, write_bill
from tests.support.report_fixtures import build_warehouse, scenario_history

D0, D1 = date(2026, 11, 16), date(2026, 11, 20)
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
FETCHED = datetime(2026, 11, 23, 6, tzinfo=UTC)
BILLED_MAIN, BILLED_LAB, ESTIMATED, BANDWIDTH = 2040.07, 30.12, 18.86, 1.35
BILLED = BILLED_MAIN + BILLED_LAB


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("billed_report") / "home"
    path.mkdir()
    scenario_history(path)
    for i in range(5):
        day = D0 + timedelta(days=i)
        write_bill(path, "main", day, scenario_main_bill(day), fetch_id=f"m{i}", fetched_at=FETCHED)
        if i < 3:
            write_bill(path, "lab", day, scenario_lab_bill(), fetch_id=f"l{i}", fetched_at=FETCHED)
    build_warehouse(path)
    return path


def test_report_leads_with_billed_spend(home: Path) -> None:
    report = build_report(home, "cost", date_from=D0, date_to=D1, now=NOW)
    m = {x.key: x.value for x in report.metrics}
    assert m["billed_cost"] == pytest.approx(BILLED, abs=1e-9)
    assert m["estimated_cost"] == pytest.approx(ESTIMATED, abs=1e-9)
    assert m["window_spend"] == pytest.approx(BILLED + ESTIMATED, abs=1e-9)
    assert m["bandwidth_cost"] == pytest.approx(BANDWIDTH, abs=1e-9)
    phrase = (f"billed {fmt(BILLED, 'usd')} to 2026-11-20 + estimated "
              f"{fmt(ESTIMATED, 'usd')} for the days not billed yet")
    assert phrase in report.summary and phrase in report.metric("window_spend").detail
    assert f"bandwidth {fmt(BANDWIDTH, 'usd')}" in report.summary
    assert NO_BILLS_NOTE not in report.notes
    split = next(x for x in report.sections if x.title == "GPU, storage and bandwidth")
    assert f"Bandwidth {fmt(BANDWIDTH, 'usd')}" in split.text


def test_account_billed_to_the_end_says_since(home: Path) -> None:
    report = build_report(home, "cost", date_from=D0, date_to=D1, account="lab", now=NOW)
    assert (f"billed {fmt(BILLED_LAB, 'usd')} to 2026-11-18 + estimated "
            f"{fmt(ESTIMATED, 'usd')} since") in report.summary


def test_reconciliation_sections(home: Path) -> None:
    report = build_report(home, "cost", date_from=D0, date_to=D1, account="main", now=NOW)
    tables = {t.key: t for t in report.tables}
    daily = {r["day"]: r["billed_cost"] for r in tables["reconciliation_daily"].rows}
    # instance contracts only (the volume is not an instance): 407.43 a day, + 0.42 on 11-17
    expected = {D0 + timedelta(days=i): 407.43 + (0.42 if i == 1 else 0.0) for i in range(5)}
    assert daily == pytest.approx(expected, abs=1e-9)
    (only,) = tables["billed_only"].rows
    assert (only["instance_id"], only["billed_cost"]) == (999, 0.42)
    assert only["likely_reason"].startswith("never seen by a snapshot")
    assert all(r["likely_reason"] for r in tables["reconciliation_differences"].rows)
    assert "Billed vs estimated" in [s.title for s in report.sections]


def test_markdown_and_csv_carry_the_same_figures(home: Path, tmp_path: Path) -> None:
    paths = write_reports(home, "cost", date_from=D0, date_to=D1, formats=("md", "csv", "html"),
                          out_dir=tmp_path, now=NOW)
    md = next(p for p in paths if p.suffix == ".md").read_text()
    summary = next(p for p in paths if p.name.endswith("_summary.csv"))
    with summary.open(newline="") as f:
        values = {r["metric"]: r["value"] for r in csv.DictReader(f)}
    assert float(values["billed_cost"]) == pytest.approx(BILLED, abs=1e-9)
    assert float(values["estimated_cost"]) == pytest.approx(ESTIMATED, abs=1e-9)
    assert float(values["window_spend"]) == pytest.approx(BILLED + ESTIMATED, abs=1e-9)
    for value in (BILLED, ESTIMATED, BILLED + ESTIMATED, BANDWIDTH):
        assert fmt(value, "usd") in md
    assert "| 999 |" in md
    html = next(p for p in paths if p.suffix == ".html").read_text()
    assert "chart-reconciliation" in html


def test_focus_sums_equal_bills_plus_unbilled_estimates(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "focus.parquet"
    result = export_focus(home, date_from=D0, date_to=D1, out=out)
    rows = pq.read_table(out).to_pylist()
    billed = [r for r in rows if r["x_CostSource"] == "billed"]
    estimated = [r for r in rows if r["x_CostSource"] == "estimated"]
    assert len(billed) + len(estimated) == len(rows)
    assert float(sum(r["BilledCost"] for r in billed)) == pytest.approx(BILLED, abs=1e-9)
    assert float(sum(r["BilledCost"] for r in estimated)) == pytest.approx(ESTIMATED, abs=1e-8)
    assert float(result.total_billed_cost) == pytest.approx(BILLED + ESTIMATED, abs=1e-8)
    assert {r["BillingAccountId"] for r in estimated} == {"lab"}
    assert all(r["x_IsEstimate"] for r in estimated) and not any(r["x_IsEstimate"]
                                                                   for r in billed)
    net = [r for r in billed if r["ServiceCategory"] == "Networking"]
    assert float(sum(r["BilledCost"] for r in net)) == pytest.approx(BANDWIDTH, abs=1e-9)
    assert {r["ConsumedUnit"] for r in net} == {"GB"}
    assert sum(r["ConsumedQuantity"] for r in net) == Decimal(5 * 15 + 3 * 20)
    gpu = next(r for r in billed if r["ResourceId"] == "104" and r["ServiceCategory"] == "Compute")
    assert (gpu["ListUnitPrice"], gpu["PricingQuantity"], gpu["PricingUnit"]) == (16, 24, "Hours")
    assert gpu["ListCost"] == gpu["BilledCost"] == Decimal("384")
    assert {r["InvoiceId"] for r in rows} == {"VAST-main-2026-11-PROVISIONAL",
                                              "VAST-lab-2026-11-PROVISIONAL"}
    vol = [r for r in billed if r["ResourceType"] == "Volume"]
    assert float(sum(r["BilledCost"] for r in vol)) == pytest.approx(2.5)


def test_without_bills_the_report_says_how_to_fetch_them(tmp_path: Path) -> None:
    scenario_history(tmp_path)
    build_warehouse(tmp_path)
    report = build_report(tmp_path, "cost", date_from=D0, date_to=D1, now=NOW)
    assert "bills not fetched yet, run `vast-pipeline charges`" in report.summary
    assert NO_BILLS_NOTE in report.notes
    assert report.metric("billed_cost").value == 0
    assert report.metric("estimate_gap").value is None
    assert "Billed vs estimated" not in [s.title for s in report.sections]


def test_a_day_billed_before_collection_began_is_reported_from_the_bill(
        tmp_path: Path) -> None:
    """Bills are historical: a day billed before the first snapshot is reported and exported
    from its bill, and the estimate's gap leaves it out (it has no estimate, not a $0 one)."""
    scenario_history(tmp_path)
    early = D0 - timedelta(days=2)
    write_bill(tmp_path, "main", early, scenario_main_bill(early), fetch_id="early",
               fetched_at=FETCHED)
    write_bill(tmp_path, "main", D0, scenario_main_bill(D0), fetch_id="m0", fetched_at=FETCHED)
    build_warehouse(tmp_path)
    only_bill = build_report(tmp_path, "cost", date_from=early, date_to=early, now=NOW)
    assert only_bill.metric("window_spend").value == pytest.approx(407.93, abs=1e-9)
    assert only_bill.metric("estimate_gap").value is None
    observed = build_report(tmp_path, "cost", date_from=D0, date_to=D0, account="main", now=NOW)
    both = build_report(tmp_path, "cost", date_from=early, date_to=D0, account="main", now=NOW)
    assert observed.metric("estimate_gap").value is not None
    assert both.metric("estimate_gap").value == pytest.approx(
        observed.metric("estimate_gap").value, abs=1e-12)
    result = export_focus(tmp_path, date_from=early, date_to=early, out=tmp_path / "f.parquet")
    assert float(result.total_billed_cost) == pytest.approx(407.93, abs=1e-8)
