"""One clock per run: each command computes its windows once, from one moment, and the
tests pin that moment (`VAST_PIPELINE_NOW`) at the edges of a day, a month and a year.

The demo runs as a user runs it (the console script in a subprocess, the embedded simulator
over real HTTP); `report`, `export focus` and `charges` then run on its data with the same
pinned clock. Expected windows are computed here from the pinned moment and the documented
definitions (`demo --days N`: the last N x 24 h of snapshots, billed and reported for every
UTC day they touch; `report`/`export`: the 7 UTC days ending today; `charges`: today and
the two days before), never read back from the code under test.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.billing import fetch_day, stored_day_total
from pipeline.cli import main
from pipeline.core.clock import NOW_ENV
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import SimulatorServer
from pipeline.source.client import VastClient
from pipeline.startup import load_settings
from pipeline.storage.store import Store
from pipeline.warehouse.query import query
from tests.support.cli import assert_one_sentence_error, run_cli

CADENCE = timedelta(minutes=15)  # the default cadence the demo's snapshots follow
SIZE = "6"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def cents(amount: object) -> str:
    """A total rounded to cents, whatever its type (FOCUS money is Decimal)."""
    return f"{float(amount):.2f}"  # type: ignore[arg-type]


def _month_after(day: date) -> datetime:
    first = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


class DemoRun:
    """One pinned demo run and what it printed."""

    def __init__(self, home: Path, now: datetime, days: int) -> None:
        self.home, self.now, self.days = home, now, days
        result = run_cli("demo", "--days", str(days), "--size", SIZE, home=home,
                         env={NOW_ENV: _iso(now)})
        assert result.returncode == 0, result.stderr
        self.stdout = result.stdout
        # what `--days N` means, from the pinned moment: the cadence grid's last moment at
        # or before now, and the N x 24 h ending there
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        self.last = midnight + (now - midnight) // CADENCE * CADENCE
        self.first = self.last - timedelta(days=days) + CADENCE
        self.date_from, self.date_to = self.first.date(), self.last.date()

    def line(self, prefix: str) -> str:
        [line] = [ln.strip() for ln in self.stdout.splitlines()
                  if ln.lstrip().startswith(prefix)]
        return line

    def summary(self) -> dict[str, float]:
        path = self.home / "reports" / "demo" / f"cost_{self.date_from}_{self.date_to}_summary.csv"
        with path.open(newline="") as f:
            return {row["metric"]: float(row["value"]) for row in csv.DictReader(f)
                    if row["value"] != ""}


_RUNS: dict[tuple[datetime, int], DemoRun] = {}


@pytest.fixture(scope="module")
def demo_at(tmp_path_factory: pytest.TempPathFactory):
    """A demo run per (moment, days), shared by the tests of this module that only read it."""
    def run(now: datetime, days: int) -> DemoRun:
        key = (now, days)
        if key not in _RUNS:
            home = tmp_path_factory.mktemp(f"demo_{now:%Y%m%dT%H%M}_{days}") / "home"
            home.mkdir()
            _RUNS[key] = DemoRun(home, now, days)
        return _RUNS[key]

    yield run
    _RUNS.clear()


EDGES = [
    pytest.param(datetime(2026, 12, 8, 0, 10, tzinfo=UTC), 1, id="00:10-days-1"),
    pytest.param(datetime(2026, 12, 8, 0, 10, tzinfo=UTC), 2, id="00:10-days-2"),
    pytest.param(datetime(2026, 11, 1, 0, 10, tzinfo=UTC), 1, id="first-of-month"),
    pytest.param(datetime(2026, 1, 1, 0, 10, tzinfo=UTC), 1, id="first-minutes-of-a-year"),
]


@pytest.mark.parametrize(("now", "days"), EDGES)
def test_the_demos_collection_bills_reports_and_export_cover_one_window(
        demo_at, now: datetime, days: int) -> None:
    run = demo_at(now, days)
    first_line = run.stdout.splitlines()[0]
    assert (f"the last {days} x 24 h of 15-minute snapshots" in first_line
            and f"snapshots {run.first:%Y-%m-%d %H:%M} to {run.last:%Y-%m-%d %H:%M} UTC"
            in first_line
            and f"for the UTC days {run.date_from} to {run.date_to}" in first_line), first_line
    assert run.line("snapshots:").startswith(f"snapshots: {days * 96} collected, 0 already")
    # what was collected: exactly the window's moments
    [(first, last, count)] = query(run.home, "SELECT min(snapshot_at), max(snapshot_at), "
                                             "count(*) FROM snapshots").rows
    assert (first, last, count) == (run.first, run.last, days * 96)
    # the bill of every UTC day those snapshots touch, and it is not empty
    bills = re.match(r"bills: (\d+) days fetched from the charges endpoint, \$([\d,.]+) billed",
                     run.line("bills:"))
    assert bills, run.stdout
    assert int(bills.group(1)) == (run.date_to - run.date_from).days + 1 == days + 1
    billed = float(bills.group(2).replace(",", ""))
    assert billed > 0
    fetched = [d for (d,) in query(run.home, "SELECT day FROM billed_days ORDER BY day").rows]
    assert fetched == [run.date_from + timedelta(days=i) for i in range(days + 1)]
    # reports and export: the same UTC days, and the same money as the bill and the console
    for name in ("cost", "reliability"):
        assert (run.home / "reports" / "demo" / f"{name}_{run.date_from}_{run.date_to}.html"
                ).is_file()
    summary = run.summary()
    assert cents(summary["window_spend"]) == cents(billed)
    assert f"spend {run.date_from} .. {run.date_to}: ${billed:,.2f}" in run.line("- spend")
    focus = pq.read_table(run.home / "exports" / f"focus_{run.date_from}_{run.date_to}.parquet")
    starts = {s.date() for s in focus.column("ChargePeriodStart").to_pylist()}
    assert starts and starts <= set(fetched)
    assert cents(sum(focus.column("BilledCost").to_pylist())) == cents(billed)
    # generated at the run's moment, not at the wall clock's
    md = (run.home / "reports" / "demo" / f"cost_{run.date_from}_{run.date_to}.md").read_text()
    assert f"generated {now:%Y-%m-%d %H:%M} UTC" in md


@pytest.mark.parametrize(("now", "days"), EDGES[2:] + EDGES[:1])
def test_month_to_date_and_projection_are_of_the_month_the_run_is_in(
        demo_at, now: datetime, days: int) -> None:
    run = demo_at(now, days)
    month_start = run.date_to.replace(day=1)
    [(expected,)] = query(run.home, "SELECT coalesce(sum(total_cost), 0) FROM spend_daily "
                                    "WHERE day BETWEEN ? AND ?",
                          params=[month_start, run.date_to]).rows
    summary = run.summary()
    assert cents(summary["month_to_date"]) == cents(expected)
    # the projection adds the burn rate over the hours left after the newest snapshot
    hours_left = (_month_after(run.date_to) - run.last) / timedelta(hours=1)
    assert summary["projected_month"] == pytest.approx(
        summary["month_to_date"] + summary["burn_rate_per_hour"] * hours_left)
    md = (run.home / "reports" / "demo" / f"cost_{run.date_from}_{run.date_to}.md").read_text()
    assert f"| **Month to date** | **${summary['month_to_date']:,.2f}** | {month_start} to " \
           f"{run.date_to} |" in md
    assert f"Projected {run.date_to:%B %Y}" in md and f"× {hours_left:,.0f} h left" in md


@pytest.mark.parametrize("pinned", [datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
                                    datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
                                    datetime(2026, 1, 1, 0, 10, tzinfo=UTC)],
                         ids=["last-second-of-a-year", "midnight", "00:10"])
def test_report_and_export_default_to_the_7_days_ending_the_pinned_day(
        demo_at, tmp_path: Path, pinned: datetime) -> None:
    run = demo_at(datetime(2026, 1, 1, 0, 10, tzinfo=UTC), 1)
    today = pinned.date()
    week = (today - timedelta(days=6), today)
    env = {NOW_ENV: _iso(pinned)}
    out = tmp_path / "reports"
    report = run_cli("report", "cost", "--format", "md", "--out", str(out), home=run.home,
                     env=env)
    assert report.returncode == 0, report.stderr
    assert report.stdout.split() == [str(out / f"cost_{week[0]}_{week[1]}.md")]
    text = (out / f"cost_{week[0]}_{week[1]}.md").read_text()
    assert f"{week[0]} to {week[1]} (UTC)" in text and f"generated {pinned:%Y-%m-%d %H:%M}" in text
    exported = run_cli("export", "focus", "--out", str(tmp_path / "f.parquet"), home=run.home,
                       env=env)
    assert exported.returncode == 0, exported.stderr
    rows = pq.read_table(tmp_path / "f.parquet").to_pylist()
    [(expected,)] = query(run.home, "SELECT sum(total_cost) FROM spend_daily WHERE day "
                                    "BETWEEN ? AND ?", params=list(week)).rows
    assert rows and {r["ChargePeriodStart"].date() for r in rows} <= set(
        week[0] + timedelta(days=i) for i in range(7))
    assert cents(sum(r["BilledCost"] for r in rows)) == cents(expected)


def test_charges_default_to_the_pinned_day_and_the_two_before_and_no_pin_reaches_the_api(
        home: Path) -> None:
    """The pinned clock picks the days; the request carries no simulated moment, so the
    server answers for its own present (here the days are long complete)."""
    pinned = datetime(2026, 3, 1, 0, 10, tzinfo=UTC)
    fleet, key = FleetModel(seed=5, size=10), "clock-test-key-0123456789abcdef"
    config = home / "fast.toml"
    config.write_text("min_interval_seconds = 0.01\n")
    with SimulatorServer({key: fleet}) as server:
        env = {NOW_ENV: _iso(pinned), "VAST_API_KEY": key, "VAST_URL": server.url,
               "VAST_PIPELINE_CONFIG": str(config)}
        landed = run_cli("charges", home=home, env=env)
        assert landed.returncode == 0, landed.stderr
        days = [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]
        store = Store(home)
        assert landed.stdout.splitlines() == [
            f"{d}: new ${stored_day_total(store, 'default', d):,.2f}" for d in days]
        future = run_cli("charges", "--from", "2026-03-02", home=home, env=env)
        assert_one_sentence_error(future, "2026-03-02 is in the future",
                                  "today is 2026-03-01 UTC")
        as_of_pin, present = Store(home / "pinned"), Store(home / "present")
        with VastClient(key, server.url, min_interval=0.0, simulated_time=pinned) as client:
            fetch_day(client, as_of_pin, "default", days[-1])
        with VastClient(key, server.url, min_interval=0.0) as client:
            fetch_day(client, present, "default", days[-1])
    stored = stored_day_total(store, "default", days[-1])
    assert stored == stored_day_total(present, "default", days[-1])
    assert stored != stored_day_total(as_of_pin, "default", days[-1])


def test_alerts_list_the_transitions_of_the_7_days_ending_the_pinned_day(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.alerts.hooks import run_finished

    run_finished(load_settings(), "nightly", "run-1", failed=True)
    logged = datetime.now(UTC).date()  # the alert log is filed by the wall clock's day
    shown = {}
    for offset in (0, 6, 7, -1):
        monkeypatch.setenv(NOW_ENV, f"{logged + timedelta(days=offset)}T12:00:00Z")
        assert main(["alerts"]) == 0
        out = capsys.readouterr().out
        [line] = [ln for ln in out.splitlines() if ln.startswith("recent transitions")]
        shown[offset] = line.endswith(": 1 of 1")
    assert shown == {0: True, 6: True, 7: False, -1: False}


def test_a_malformed_pinned_clock_is_one_sentence(home: Path) -> None:
    result = run_cli("report", "cost", home=home, env={NOW_ENV: "yesterday"})
    assert_one_sentence_error(result, f"{NOW_ENV}=yesterday", "ISO-8601", "unset it")
    assert result.returncode == 2
