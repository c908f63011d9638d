"""The end-to-end demo: days of history from the embedded simulator, then every output.

Runs the real path, only faster than the clock: an embedded simulator over real HTTP on
127.0.0.1, answering for simulated moments at the configured cadence (15 minutes by
default) over the last `days` days; the HTTP client; the raw zone; the Parquet history;
the warehouse; the reports and the FOCUS export. Snapshot ids are derived from the moment,
so a second run skips what exists and duplicates nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pipeline.billing import BillDayResult, collect_charges, day_range
from pipeline.core import clock
from pipeline.core.config import DEFAULT_HOME, Account, Settings
from pipeline.core.errors import ConfigError
from pipeline.core.progress import progress_bar
from pipeline.core.resources import dagster_dev_command
from pipeline.landing.history import land_pending
from pipeline.landing.raw import snapshot_files
from pipeline.market.collect import rented_gpu_names, take_market_snapshot
from pipeline.market.landing import land_market_pending
from pipeline.market.raw import raw_files
from pipeline.market.settings import MarketSettings, market_settings
from pipeline.reports.model import fmt
from pipeline.sim.defaults import DEFAULT_FLEET_SIZE, DEFAULT_SEED, DEMO_MIN_INTERVAL
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import DEMO_API_KEY, SimulatorServer
from pipeline.source.client import VastClient
from pipeline.source.collect import fetch_snapshot
from pipeline.startup import load_settings, prepare_dagster_home
from pipeline.storage.datasets import dataset
from pipeline.storage.store import Store

# Polite even to the simulator: it answers 429 to calls closer than DEMO_MIN_INTERVAL;
# the client keeps a little more than that between calls, as it should with the real API.
CLIENT_MIN_INTERVAL = 0.015
DEMO_ACCOUNT = Account("default", "embedded simulator", "VAST_API_KEY", "simulator")
# Records a finished demo in Dagster (`assets.record.record_demo`, passed by the CLI).
Recorder = Callable[..., None]


@dataclass(frozen=True)
class DemoWindow:
    """What `demo --days N` covers, one definition for every step of the run: the last
    N x 24 h of snapshots on the cadence grid (`first` .. `last`, `step` apart), billed,
    reported and exported for every UTC day those snapshots touch (`date_from` ..
    `date_to`, the first of them partly covered unless the run starts at midnight)."""

    first: datetime
    last: datetime
    step: timedelta

    @property
    def date_from(self) -> date:
        return self.first.date()

    @property
    def date_to(self) -> date:
        return self.last.date()

    def moments(self) -> list[datetime]:
        count = int((self.last - self.first) / self.step) + 1
        return [self.first + i * self.step for i in range(count)]

    def label(self) -> str:
        """The window in words: the demo's first printed line says what it covers."""
        return (f"snapshots {self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC; "
                f"bills, reports and the FOCUS export for the UTC days {self.date_from} to "
                f"{self.date_to}")


def demo_window(days: int, cadence_minutes: int, now: datetime) -> DemoWindow:
    """The grid of the configured cadence over the `days` x 24 h before `now` (the run's one
    clock), ending at its last moment: the demo's snapshots follow the cadence its
    warehouse is built with."""
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = now.hour * 60 + now.minute
    last = midnight + timedelta(minutes=minutes - minutes % cadence_minutes)
    step = timedelta(minutes=cadence_minutes)
    return DemoWindow(first=last - timedelta(days=days) + step, last=last, step=step)


def demo_snapshot_id(moment: datetime) -> str:
    return f"demo-{moment:%Y%m%dT%H%M}"


def backfill(store: Store, fleet: FleetModel, window: DemoWindow) -> tuple[int, int]:
    """Collect every missing moment of the window; returns (collected, skipped).

    Each moment is fetched over HTTP into the raw zone as a scheduled run would; each day's
    new snapshots are then landed at once (`land_pending`, the scheduled path) instead of
    rewriting the day after every snapshot: the same code, and much faster.
    """
    account = DEMO_ACCOUNT
    moments = window.moments()
    existing = _existing_ids(store, account.name, moments)
    todo = [m for m in moments if demo_snapshot_id(m) not in existing]
    with SimulatorServer(fleet, min_interval=DEMO_MIN_INTERVAL) as server, \
            progress_bar(len(todo), "collecting snapshots") as bar:
        client = VastClient(DEMO_API_KEY, server.url, min_interval=CLIENT_MIN_INTERVAL)
        for day in sorted({m.date() for m in todo}):
            for moment in (m for m in todo if m.date() == day):
                client.simulated_time = moment
                fetch_snapshot(store, account, client, snapshot_at=moment, source="simulator",
                               snapshot_id=demo_snapshot_id(moment))
                bar.advance()
            land_pending(store, account.name, day)
    return len(todo), len(moments) - len(todo)


def market_moments(window: DemoWindow, cadence_minutes: int) -> list[datetime]:
    """The market cadence's grid over the demo window (its moments on that grid)."""
    step = timedelta(minutes=cadence_minutes)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    first = epoch + -((epoch - window.first) // step) * step  # the first grid moment >= first
    count = int((window.last - first) / step) + 1 if first <= window.last else 0
    return [first + i * step for i in range(count)]


def demo_market_id(moment: datetime) -> str:
    return f"demo-market-{moment:%Y%m%dT%H%M}"


def backfill_market(store: Store, fleet: FleetModel, window: DemoWindow,
                    market: MarketSettings) -> tuple[int, int]:
    """A market snapshot at every market-cadence moment of the window, asked of the
    simulator at that moment (its clock), for the GPU models the demo fleet rented; each
    day's new snapshots are landed at once. Returns (taken, skipped)."""
    moments = market_moments(window, market.cadence_minutes)
    existing = {sid for day in sorted({m.date() for m in moments})
                for sid in raw_files(store, day)}
    todo = [m for m in moments if demo_market_id(m) not in existing]
    names = rented_gpu_names(store, window.last) or list(market.gpu_names)
    with SimulatorServer(fleet, min_interval=DEMO_MIN_INTERVAL,
                         search_min_interval=DEMO_MIN_INTERVAL) as server, \
            VastClient(DEMO_API_KEY, server.url, min_interval=CLIENT_MIN_INTERVAL) as client, \
            progress_bar(len(todo), "market snapshots") as bar:
        for day in sorted({m.date() for m in todo}):
            for moment in (m for m in todo if m.date() == day):
                client.simulated_time = moment
                take_market_snapshot(store, client.search_offers, market, names, snapshot_at=moment,
                                     source="simulator", retries=lambda: client.stats.retries,
                                     snapshot_id=demo_market_id(moment), land=False)
                bar.advance()
            land_market_pending(store, day)
    return len(todo), len(moments) - len(todo)


def fetch_bills(settings: Settings, fleet: FleetModel,
                window: DemoWindow) -> list[BillDayResult]:
    """The bill of every UTC day of the window, through the same `collect_charges` as the
    CLI (a second run replaces them, it never adds).

    The simulator answers as of the window's last moment, so the days before it are
    complete and the last day's bill runs to the last snapshot, like the estimates beside
    it.
    """
    @contextmanager
    def demo_client(account: Account, _settings: Settings) -> Iterator[VastClient]:
        with SimulatorServer(fleet, min_interval=DEMO_MIN_INTERVAL) as server, \
                VastClient(DEMO_API_KEY, server.url, min_interval=CLIENT_MIN_INTERVAL,
                           simulated_time=window.last) as client:
            yield client

    days = day_range(window.date_from, window.date_to)
    with progress_bar(len(days), "fetching bills") as bar:
        return collect_charges(settings, days, "default", progress=lambda _r: bar.advance(),
                               clients=demo_client, today=window.date_to)


def _existing_ids(store: Store, account: str, moments: list[datetime]) -> set[str]:
    days = sorted({m.date() for m in moments})
    return {sid for day in days for sid in snapshot_files(store, account, day)}


def run_demo(*, days: int = 7, size: int = DEFAULT_FLEET_SIZE, seed: int = DEFAULT_SEED,
             home: str | None = None, now: datetime | None = None,
             record: Recorder | None = None) -> int:
    """The whole demo; prints where everything is and a few answers. `now`: the run's
    one clock (default `pipeline.core.clock.now()`), read once; every window derives from it.
    `record`: shows in Dagster what the demo materialized (the CLI passes
    `assets.record.record_demo`; the library does not import `assets`)."""
    if not 1 <= days <= 366:
        raise ConfigError(f"--days {days} is out of range; use 1 to 366.")
    if not 1 <= size <= 5000:
        raise ConfigError(f"--size {size} is out of range; use 1 to 5000.")
    home_text = home or os.environ.get("VAST_PIPELINE_HOME") or DEFAULT_HOME
    if "://" in home_text:
        raise ConfigError("The demo writes to a local folder: give --home a local path (the "
                          "other commands work on an s3:// home).")
    home_dir = Path(home_text).resolve()
    store = Store(str(home_dir))
    fleet = FleetModel(seed=seed, size=size, drift_rate=0.01, new_field_rate=0.002,
                       broken_rate=0.0005)
    settings = load_settings({**os.environ, "VAST_PIPELINE_HOME": str(home_dir)})
    now = now or clock.now()
    window = demo_window(days, settings.cadence_minutes, now)
    _say(f"vast-pipeline demo: the last {days} x 24 h of {settings.cadence_minutes}-minute "
         f"snapshots of a simulated fleet of about {size} instances ({window.label()}), "
         f"into {home_dir}")
    collected, skipped = backfill(store, fleet, window)
    _say(f"snapshots: {collected} collected, {skipped} already there")
    market = market_settings(settings)
    taken, present = backfill_market(store, fleet, window, market)
    _say(f"market: {taken} snapshots of the offer search taken (every "
         f"{market.cadence_minutes} minutes), {present} already there")
    bills = fetch_bills(Settings(home=str(home_dir), accounts=(DEMO_ACCOUNT,)), fleet, window)
    _say(f"bills: {len(bills)} days fetched from the charges endpoint, "
         f"${sum(b.total for b in bills):,.2f} billed ({sum(b.contracts for b in bills)} "
         f"contract-days, {sum(1 for b in bills if b.previous_total is None)} new days)")
    dagster_home = prepare_dagster_home(settings)
    return _finish(settings, dagster_home, window, now, record)


def _finish(settings: Settings, dagster_home: Path, window: DemoWindow, now: datetime,
            record: Recorder | None) -> int:
    from pipeline.alerts.hooks import after_landing_and_build
    from pipeline.reports import write_reports
    from pipeline.reports.focus import export_focus
    from pipeline.warehouse.build import build_for
    from pipeline.warehouse.query import query

    home_dir = Path(settings.home)
    with progress_bar(None, "building warehouse") as bar:
        result = build_for(settings, progress=bar)
    _say(result.summary())
    after_landing_and_build(settings, [DEMO_ACCOUNT.name], deliver=False)
    date_from, date_to = window.date_from, window.date_to
    reports_dir = home_dir / dataset("reports").folder / "demo"
    paths = [p for kind in ("cost", "reliability")
             for p in write_reports(str(home_dir), kind, date_from=date_from, date_to=date_to,
                                    out_dir=reports_dir, now=now)]
    focus = export_focus(str(home_dir), date_from=date_from, date_to=date_to,
                         out=home_dir / dataset("exports").folder
                         / f"focus_{date_from}_{date_to}.parquet")
    answers = _headline_answers(str(home_dir), query, date_from, date_to)
    _print_summary(home_dir, dagster_home, paths, focus.path, answers)
    if record is not None:  # the Dagster UI shows what the demo materialized
        record(str(home_dir), dagster_home, result, paths, (date_from, date_to),
               since=date_from)
    return 0


def _headline_answers(home: str, query, date_from: date, date_to: date) -> list[str]:
    """The console's figures: columns of the marts the reports read, over the reports'
    window, so the console and the reports it just wrote cannot disagree."""
    cost = query(home, "select spend_total, billed_cost, cost_per_gpu_hour, burn_rate_per_hour, "
                       "burn_per_month, instances_running, credit_balance, runway_days "
                       "from report_cost_summary(?, ?)", params=[date_from, date_to]).rows[0]
    rel = query(home, "select availability, incidents, incidents_ongoing "
                      "from report_reliability_summary(?, ?)", params=[date_from, date_to]).rows
    spend, billed, per_gpu_hour, burn, burn_month, running, credit, runway = cost
    window = f"{date_from} .. {date_to}"
    lines = [
        f"spend {window}: {fmt(spend, 'usd')}, {fmt(billed, 'usd')} of it billed "
        f"({fmt(per_gpu_hour, 'usd_per_gpu_hour')} per GPU-hour)",
        f"burn rate now: {fmt(burn, 'usd_per_hour')} = {fmt(burn_month, 'usd')}/month "
        f"({running} instances running)"
        + (f"; credit {fmt(credit, 'usd')} lasts {fmt(runway, 'days')}"
           if runway is not None else ""),
    ]
    if rel:
        availability, incidents, ongoing = rel[0]
        lines.append(f"fleet availability {window}: {fmt(availability, 'pct')} with "
                     f"{incidents} incidents ({ongoing} ongoing)")
    market = _market_answer(home, query, date_from, date_to)
    if market:
        lines.append(market)
    return lines


def _market_answer(home: str, query, date_from: date, date_to: date) -> str | None:
    """The savings advice in one line, from the marts the cost report's Market section
    reads (None with no market data at all)."""
    history = query(home, "select span_hours, lookback_hours, has_lookback "
                          "from market_history").rows
    if not history:
        return None
    span, lookback, has_lookback = history[0]
    if not has_lookback:
        return (f"market: not enough history for savings advice yet ({span:.0f} h of the "
                f"{lookback:.0f} h lookback)")
    savings = query(home, "select opportunities, total_monthly_savings "
                          "from report_market_savings(?, ?) limit 1",
                    params=[date_from, date_to]).rows
    if not savings:
        return "market: no persistent cheaper offer for any running on-demand instance now"
    opportunities, total = savings[0]
    noun = "instance" if opportunities == 1 else "instances"
    return (f"market: {opportunities} running {noun} could save {fmt(total, 'usd')}/month in "
            "all on persistent cheaper offers (each against its own best offer; see the cost "
            "report)")


def _print_summary(home_dir: Path, dagster_home: Path, reports: list[Path], focus: Path,
                   answers: list[str]) -> None:
    bin_dir = Path(sys.executable).parent  # the tools installed beside this interpreter
    print("\nAnswers:")
    for line in answers:
        print(f"  - {line}")
    print("\nReports (open the .html files in a browser):")
    for path in reports:
        print(f"  {path}")
    print(f"FOCUS export: {focus}")
    print(f"\nQuery the warehouse:\n  {bin_dir / 'duckdb'} -readonly "
          f"{home_dir / 'warehouse.duckdb'} "
          "-c 'select * from spend_daily order by total_cost desc limit 10'\n"
          f"  VAST_PIPELINE_HOME={home_dir} {bin_dir / 'vast-pipeline'} sql "
          "\"select * from fleet_now\"")
    print("Dagster UI on the same data (then open http://127.0.0.1:3000): the assets show what "
          "this demo materialized, recorded at its end (no runs are listed: it ran without "
          f"Dagster; schedules stay off until switched on):\n"
          f"  {dagster_dev_command(home_dir, dagster_home)}")


def _say(message: str) -> None:
    print(message, flush=True)
