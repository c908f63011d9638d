"""Cost and reliability reports: every format carries the right numbers.

The warehouse is built by the real `pipeline.warehouse.build.build` from a hand-made Parquet
history (tests/support/report_fixtures.py); expected values are worked out in plain Python from
the same hand-made scenario (tests/support/scenario_oracle.py), never from the warehouse's tables
or a report's SQL. A second home holds the scenario across a year end (Dec 29 - Jan 2).
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from pipeline import reports
from pipeline.core.errors import ReportError
from pipeline.reports import (
    build_report,
    month_to_date_window,
    parse_day,
    parse_window,
    write_report,
    write_reports,
)
from pipeline.reports.window import Window
from tests.support.report_fixtures import (
    build_warehouse,
    delete_model_files,
    scenario_history,
    scenario_home,
)
from tests.support.scenario_oracle import Scenario, displays

D0, D1 = date(2026, 11, 16), date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 23, 59, tzinfo=UTC)
SCENARIO = Scenario()
YEAR_END = Scenario(start=datetime(2026, 12, 29, tzinfo=UTC))  # Dec 29 .. Jan 2
WINDOWS = [
    ("november", D0, D1, None), ("november", date(2026, 11, 17), date(2026, 11, 18), None),
    ("november", D0, D1, "main"), ("november", D0, D1, "lab"),
    # across the year end: month to date is January's, projected to Jan 31
    ("year_end", date(2026, 12, 30), date(2027, 1, 2), None),
    ("year_end", date(2027, 1, 1), date(2027, 1, 2), "lab"),
    # December month to date: the projection runs to Dec 31 (31 days), 24 h and 48 h left
    ("year_end", date(2026, 12, 29), date(2026, 12, 30), None),
    ("year_end", date(2026, 12, 29), date(2026, 12, 29), "main"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scenario_home(tmp_path_factory, "reports")


@pytest.fixture(scope="module")
def homes(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {"november": home,
            "year_end": scenario_home(tmp_path_factory, "year_end", start=YEAR_END.start)}


ORACLES = {"november": SCENARIO, "year_end": YEAR_END}


def _close(a: float | None, b: float | None) -> bool:
    return a == b if a is None or b is None else a == pytest.approx(b, rel=1e-9, abs=1e-9)


def _mismatches(report: object, expected: dict[str, float | None]) -> dict[str, tuple]:
    shown = {m.key: m.value for m in report.metrics}  # type: ignore[attr-defined]
    assert set(expected) <= set(shown)
    return {k: (shown[k], v) for k, v in expected.items() if not _close(shown[k], v)}


@pytest.mark.parametrize(("scenario", "d0", "d1", "account"), WINDOWS)
def test_cost_figures_equal_the_scenario(homes: dict[str, Path], scenario: str, d0: date,
                                         d1: date, account: str | None) -> None:
    report = build_report(homes[scenario], "cost", date_from=d0, date_to=d1, account=account,
                          now=NOW)
    assert _mismatches(report, ORACLES[scenario].cost(d0, d1, account)) == {}
    assert [m.key for m in report.headlines][:5] == [
        "window_spend", "month_to_date", "projected_month", "cost_per_gpu_hour", "idle_spend"]


@pytest.mark.parametrize(("scenario", "d0", "d1", "account"), WINDOWS)
def test_reliability_figures_equal_the_scenario(homes: dict[str, Path], scenario: str,
                                                d0: date, d1: date,
                                                account: str | None) -> None:
    report = build_report(homes[scenario], "reliability", date_from=d0, date_to=d1,
                          account=account, now=NOW)
    assert _mismatches(report, ORACLES[scenario].reliability(d0, d1, account)) == {}
    assert [m.key for m in report.headlines][:2] == ["availability", "coverage"]


def test_projection_counts_the_hours_left_in_the_month() -> None:
    """The oracle's own arithmetic, spelled out for the December windows above."""
    as_of, burn = YEAR_END.newest(None)
    assert as_of == datetime(2027, 1, 2, 23, 45, tzinfo=UTC) and burn > 0
    for d1, hours_left in ((date(2026, 12, 30), 24), (date(2026, 12, 29), 48)):
        cost = YEAR_END.cost(date(2026, 12, 29), d1)
        assert cost["projected_month"] == pytest.approx(cost["month_to_date"]
                                                        + burn * hours_left)
    january = YEAR_END.cost(date(2026, 12, 30), date(2027, 1, 2))
    left = (datetime(2027, 2, 1, tzinfo=UTC) - as_of).total_seconds() / 3600
    assert january["month_to_date"] == pytest.approx(
        sum(YEAR_END.per_instance_cost(date(2027, 1, 1), date(2027, 1, 2)).values()))
    assert january["projected_month"] == pytest.approx(january["month_to_date"] + burn * left)


def test_scenario_shows_what_happened(home: Path) -> None:
    """The scenario's events reach the reports (guards against an all-empty fixture)."""
    cost = build_report(home, "cost", date_from=D0, date_to=D1, now=NOW)
    changes = next(s.table for s in cost.sections if s.table and s.table.key == "price_changes")
    assert [(r["instance_id"], r["changed_at"]) for r in changes.rows] == [
        (102, datetime(2026, 11, 17, 12, tzinfo=UTC))]
    assert cost.metric("idle_spend").value > 0
    rel = build_report(home, "reliability", date_from=D0, date_to=D1, now=NOW)
    incidents = next(s.table for s in rel.sections if s.table and s.table.key == "incidents")
    assert {(r["instance_id"], r["host_id"]) for r in incidents.rows} == {
        (104, 7004), (106, 7005), (107, 7007)}
    assert 0 < rel.metric("coverage").value < 1  # the two-hour collection gap
    # an instance that never ran is listed as such, with no time to running
    starts = {r["instance_id"]: r for r in next(
        s.table for s in rel.sections if s.table and s.table.key == "time_to_running").rows}
    assert (starts[107]["time_to_running_hours"], starts[107]["reached"]) == (None, "never ran")


def _data_values(html: str, attr: str) -> dict[str, str]:
    return dict(re.findall(rf'{attr}="([a-z0-9_]+)" data-value="([^"]*)"', html))


@pytest.fixture(scope="module")
def html_reports(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both HTML reports, rendered once (matplotlib is the slow part)."""
    out = tmp_path_factory.mktemp("html")
    return {kind: write_report(home, kind, date_from=D0, date_to=D1, fmt="html", out_dir=out,
                               now=NOW)[0] for kind in ("cost", "reliability")}


def test_html_is_self_contained_and_carries_exact_values(home: Path,
                                                         html_reports: dict[str, Path]) -> None:
    for kind, expected in (("cost", SCENARIO.cost(D0, D1)),
                           ("reliability", SCENARIO.reliability(D0, D1))):
        path = html_reports[kind]
        assert path.name == f"{kind}_2026-11-16_2026-11-20.html"
        html = path.read_text()
        shown = _data_values(html, "data-metric")
        assert len(shown) >= 6 and set(shown) <= set(expected)
        for key, text in shown.items():
            assert _close(float(text) if text else None, expected[key]), (kind, key)
        assert html.count("<svg") >= 4 and "<path" in html
        assert "@media print" in html
        assert not re.search(r"<(script|link|img|iframe|object)\b", html)
        assert not re.search(r'(src|href)\s*=\s*"(?!#)', html)
        assert "url(http" not in html and "@import" not in html


def test_html_instance_table_equals_cost_daily(home: Path,
                                               html_reports: dict[str, Path]) -> None:
    html = html_reports["cost"].read_text()
    table = html[html.index('data-table="instances"'):]
    table = table[:table.index("</table>")]
    shown = [float(v) for v in re.findall(r'data-col="total_cost" data-value="([^"]+)"', table)]
    expected = sorted(SCENARIO.per_instance_cost(D0, D1).values(), reverse=True)
    assert shown == pytest.approx(expected, rel=1e-12)


def test_markdown_carries_the_same_numbers(home: Path, tmp_path: Path) -> None:
    for kind, expected in (("cost", SCENARIO.cost(D0, D1, "main")),
                           ("reliability", SCENARIO.reliability(D0, D1, "main"))):
        (path,) = write_report(home, kind, date_from=D0, date_to=D1, account="main", fmt="md",
                               out_dir=tmp_path, now=NOW)
        assert path.name == f"{kind}_2026-11-16_2026-11-20_main.md"
        text = path.read_text()
        report = build_report(home, kind, date_from=D0, date_to=D1, account="main", now=NOW)
        for metric in report.headlines:
            assert any(f"| **{shown}** |" in text
                       for shown in displays(expected[metric.key], metric.unit)), metric.key
    per_instance = SCENARIO.per_instance_cost(D0, D1, "main")
    cost_md = (tmp_path / "cost_2026-11-16_2026-11-20_main.md").read_text()
    for (_, iid), total in per_instance.items():
        assert any(re.search(rf"\| {iid} \|.*\| {re.escape(shown)} \|", cost_md)
                   for shown in displays(total, "usd")), iid


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_csv_carries_the_same_numbers(home: Path, tmp_path: Path) -> None:
    paths = write_report(home, "cost", date_from=D0, date_to=D1, fmt="csv", out_dir=tmp_path,
                         now=NOW)
    names = {p.name for p in paths}
    assert {"cost_2026-11-16_2026-11-20_summary.csv",
            "cost_2026-11-16_2026-11-20_instances.csv"} <= names
    summary = {r["metric"]: r["value"]
               for r in _read_csv(tmp_path / "cost_2026-11-16_2026-11-20_summary.csv")}
    for key, value in SCENARIO.cost(D0, D1).items():
        assert _close(float(summary[key]) if summary[key] else None, value), key
    rows = _read_csv(tmp_path / "cost_2026-11-16_2026-11-20_instances.csv")
    expected = {iid: total for (_, iid), total in SCENARIO.per_instance_cost(D0, D1).items()}
    assert {int(r["instance_id"]): float(r["total_cost"]) for r in rows} == pytest.approx(expected)

    paths = write_report(home, "reliability", date_from=D0, date_to=D1, fmt="csv",
                         out_dir=tmp_path, now=NOW)
    summary = {r["metric"]: r["value"]
               for r in _read_csv(tmp_path / "reliability_2026-11-16_2026-11-20_summary.csv")}
    for key, value in SCENARIO.reliability(D0, D1).items():
        assert _close(float(summary[key]) if summary[key] else None, value), key
    incidents = _read_csv(tmp_path / "reliability_2026-11-16_2026-11-20_incidents.csv")
    assert len(incidents) == int(summary["incidents"])


# --- windows and errors ---------------------------------------------------------------------


def test_parse_window_defaults_and_errors() -> None:
    today = date(2026, 11, 25)
    assert parse_window(None, None, today=today) == (date(2026, 11, 19), today)
    assert parse_window("2026-11-01", "2026-11-03", today=today) == (date(2026, 11, 1),
                                                                      date(2026, 11, 3))
    assert parse_window(None, "2026-11-10", today=today) == (date(2026, 11, 4), date(2026, 11, 10))
    with pytest.raises(ReportError) as err:
        parse_window("2026-13-01", None, today=today)
    assert str(err.value) == "--from 2026-13-01 is not a date; use YYYY-MM-DD."
    with pytest.raises(ReportError, match=r"^--to 20261101 is not a date; use YYYY-MM-DD\.$"):
        parse_window(None, "20261101", today=today)
    with pytest.raises(ReportError, match="is after --to"):
        parse_window("2026-11-20", "2026-11-10", today=today)
    assert month_to_date_window(today) == (date(2026, 11, 1), today)


def test_parse_day_is_strict_and_names_the_flag() -> None:
    assert parse_day(" 2026-11-05 ", "--from") == date(2026, 11, 5)
    for text in ("20261105", "2026-11-31", "2026-1-5", "yesterday"):
        with pytest.raises(ReportError) as err:
            parse_day(text, "--to")
        assert str(err.value) == f"--to {text} is not a date; use YYYY-MM-DD."


def test_reversed_window_is_refused_by_every_entry_point(home: Path, tmp_path: Path) -> None:
    message = r"^--from 2026-11-20 is after --to 2026-11-16; give the earlier day first\.$"
    with pytest.raises(ReportError, match=message):
        Window(D1, D0)
    with pytest.raises(ReportError, match=message):
        build_report(home, "cost", date_from=D1, date_to=D0)
    with pytest.raises(ReportError, match=message):
        write_reports(home, "reliability", date_from=D1, date_to=D0, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_write_reports_builds_once_and_writes_every_format(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    real = reports.build_report

    def counting(*args: object, **kwargs: object) -> object:
        built.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(reports, "build_report", counting)
    paths = write_reports(home, "cost", date_from=D0, date_to=D1, out_dir=tmp_path, now=NOW,
                          formats=("md", "html", "csv", "md"))
    assert built == ["cost"]
    stem = "cost_2026-11-16_2026-11-20"
    assert [p.name for p in paths[:2]] == [f"{stem}.md", f"{stem}.html"]
    assert f"{stem}_summary.csv" in {p.name for p in paths[2:]} and len(paths) > 3
    assert sorted(paths) == sorted(tmp_path.iterdir())
    # the same files as one write_report call per format (Markdown byte for byte; CSV
    # carries full float precision, whose last digit DuckDB's parallel sums may change)
    (md,) = write_report(home, "cost", date_from=D0, date_to=D1, fmt="md",
                         out_dir=tmp_path / "one", now=NOW)
    assert md.read_bytes() == (tmp_path / md.name).read_bytes()
    csvs = write_report(home, "cost", date_from=D0, date_to=D1, fmt="csv",
                        out_dir=tmp_path / "one", now=NOW)
    assert [p.name for p in csvs] == [p.name for p in paths[2:]]
    assert built == ["cost", "cost", "cost"]


def test_write_reports_refuses_a_bad_format_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"^Unknown format 'pdf'; choose html, md or csv\.$"):
        write_reports(tmp_path, "cost", date_from=D0, date_to=D1, formats=("html", "pdf"),
                      out_dir=tmp_path / "out")
    with pytest.raises(ReportError, match="No report format"):
        write_reports(tmp_path, "cost", date_from=D0, date_to=D1, formats=(),
                      out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


# The cost report reads warehouse tables only; the reliability report reads
# instance_intervals, whose days are Parquet files.
@pytest.mark.parametrize(("kind", "model"), [("reliability", "instance_intervals")])
def test_missing_model_file_is_one_sentence(tmp_path: Path, kind: str, model: str) -> None:
    damaged = tmp_path / "home"
    damaged.mkdir()
    scenario_history(damaged)
    build_warehouse(damaged)
    assert delete_model_files(damaged, model) > 0
    with pytest.raises(ReportError) as err:
        write_report(damaged, kind, date_from=D0, date_to=D1, out_dir=tmp_path / "out")
    message = str(err.value)
    assert message.startswith("Reading the warehouse failed (IO Error: ")
    assert message.endswith("; run `vast-pipeline build` to rebuild it.")
    assert "\n" not in message and err.value.__cause__ is None
    assert not (tmp_path / "out").exists()


def test_warehouse_open_for_writing_is_a_report_error(tmp_path: Path) -> None:
    writer = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    try:
        with pytest.raises(ReportError, match=r"^Cannot open .* read-only \(.*try again\.$"):
            write_report(tmp_path, "cost", date_from=D0, date_to=D1, out_dir=tmp_path / "out")
    finally:
        writer.close()


def test_missing_warehouse_says_to_build(tmp_path: Path) -> None:
    for kind in ("cost", "reliability"):
        with pytest.raises(ReportError, match=r"run `vast-pipeline build` first\.$"):
            write_report(tmp_path, kind, date_from=D0, date_to=D1, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["cost", "reliability"])
def test_empty_window_names_what_the_warehouse_covers(home: Path, tmp_path: Path,
                                                      kind: str) -> None:
    with pytest.raises(ReportError) as err:
        write_report(home, kind, date_from=date(2027, 1, 1), date_to=date(2027, 1, 7),
                     out_dir=tmp_path)
    assert str(err.value) == ("No data between 2027-01-01 and 2027-01-07; the warehouse covers "
                              "2026-11-16 to 2026-11-20.")
    with pytest.raises(ReportError, match="no data for account nobody"):
        write_report(home, kind, date_from=D0, date_to=D1, account="nobody", out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


# Each table of a report, keyed the way the oracle keys it.
_TABLE_KEYS = {
    ("cost", "daily"): lambda r: r["day"],
    ("cost", "instances"): lambda r: (r["account"], r["instance_id"]),
    ("cost", "labels"): lambda r: r["label"],
    ("reliability", "instances"): lambda r: (r["account"], r["instance_id"]),
    ("reliability", "hosts"): lambda r: r["host_id"],
    ("reliability", "incidents"): lambda r: (r["account"], r["instance_id"], r["started_at"]),
    ("reliability", "time_to_running"): lambda r: (r["account"], r["instance_id"]),
}


@pytest.mark.parametrize(("scenario", "d0", "d1", "account"), WINDOWS)
@pytest.mark.parametrize("kind", ["cost", "reliability"])
def test_every_table_row_equals_the_scenario(homes: dict[str, Path], scenario: str, d0: date,
                                             d1: date, account: str | None, kind: str) -> None:
    """Every row and figure of every table the report shows (and so of its HTML, Markdown
    and CSV, which render these rows) against the oracle's own computation."""
    report = build_report(homes[scenario], kind, date_from=d0, date_to=d1, account=account,
                          now=NOW)
    oracle = ORACLES[scenario]
    expected = (oracle.cost_tables(d0, d1, account) if kind == "cost"
                else oracle.reliability_tables(d0, d1, account))
    tables = {t.key: t for t in report.tables}
    for name, rows in expected.items():
        key = _TABLE_KEYS[(kind, name)]
        shown = {key(r): r for r in tables[name].rows}
        assert set(shown) == set(rows), (kind, name)
        for k, figures in rows.items():
            bad = {f: (shown[k][f], v) for f, v in figures.items() if not _close(shown[k][f], v)}
            assert bad == {}, (kind, name, k)
