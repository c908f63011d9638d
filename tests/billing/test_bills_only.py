"""An account with bills but no snapshots yet: a team that installs today and backfills a
month of bills builds the warehouse, queries the bill tables and gets a cost report and a
FOCUS export before its first snapshot; the reliability report says there are no snapshots
yet. The first snapshots then arrive, and the incremental build equals a full build.

Bills come from the simulator over real HTTP through the `charges` command; snapshots
through the demo's backfill (the real client, raw zone and Parquet landing).
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.billing import stored_day_total
from pipeline.demo import DemoWindow, backfill
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import DEMO_API_KEY, SimulatorServer
from pipeline.storage.store import Store
from pipeline.warehouse.query import query
from tests.support.cli import assert_one_sentence_error, run_cli
from tests.support.warehouse import build_at_cadence
from tests.support.warehouse import build_copy as _build_copy
from tests.support.warehouse import snapshot_of_models as _snapshot_of_models

MONTH = [date(2026, 10, 1) + timedelta(days=i) for i in range(31)]
FIRST_SNAPSHOT_DAY = date(2026, 11, 1)
SIMULATOR_NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # every day above is complete


def cents(amount: object) -> str:
    return f"{float(amount):.2f}"  # type: ignore[arg-type]


def _summary(path: Path) -> dict[str, float]:
    with path.open(newline="") as f:
        return {r["metric"]: float(r["value"]) for r in csv.DictReader(f) if r["value"]}


def test_bills_before_the_first_snapshot_build_and_report_then_snapshots_build_in_place(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    fleet = FleetModel(seed=11, size=12)
    config = tmp_path / "fast.toml"
    config.write_text("min_interval_seconds = 0.005\n")
    with SimulatorServer(fleet, clock=lambda: SIMULATOR_NOW, min_interval=0.0) as server:
        env = {"VAST_API_KEY": DEMO_API_KEY, "VAST_URL": server.url,
               "VAST_PIPELINE_CONFIG": str(config)}
        backfilled = run_cli("charges", "--from", str(MONTH[0]), "--to", str(MONTH[-1]),
                             home=home, env=env)
        assert backfilled.returncode == 0, backfilled.stderr
        assert len(backfilled.stdout.splitlines()) == len(MONTH)

        built = run_cli("build", home=home, env=env)
        assert built.returncode == 0, built.stderr
        assert "full build" in built.stdout and "0 days recomputed" in built.stdout
        store = Store(home)
        bills = {d: stored_day_total(store, "default", d) for d in MONTH}
        assert all(total is not None for total in bills.values()) and sum(bills.values()) > 0
        _bill_tables_hold_the_bills(home, bills)

        # the cost report and the FOCUS export come from the bills alone
        report = run_cli("report", "cost", "--from", str(MONTH[0]), "--to", str(MONTH[-1]),
                         "--format", "csv", "--out", str(tmp_path / "r"), home=home, env=env)
        assert report.returncode == 0, report.stderr
        summary = _summary(tmp_path / "r" / f"cost_{MONTH[0]}_{MONTH[-1]}_summary.csv")
        assert cents(summary["window_spend"]) == cents(sum(bills.values()))
        assert cents(summary["billed_cost"]) == cents(sum(bills.values()))
        assert summary["estimated_cost"] == 0
        exported = run_cli("export", "focus", "--from", str(MONTH[0]), "--to", str(MONTH[-1]),
                           "--out", str(tmp_path / "focus.parquet"), home=home, env=env)
        assert exported.returncode == 0, exported.stderr
        focus = pq.read_table(tmp_path / "focus.parquet").to_pylist()
        assert cents(sum(r["BilledCost"] for r in focus)) == cents(sum(bills.values()))
        assert {r["ChargePeriodStart"].date() for r in focus} == set(MONTH)

        # the reliability report is built from snapshots: a data condition, one sentence
        reliability = run_cli("report", "reliability", "--from", str(MONTH[0]), "--to",
                              str(MONTH[-1]), home=home, env=env)
        assert_one_sentence_error(reliability, "no snapshots yet", "vast-pipeline collect")
        assert reliability.returncode == 1

        # the first snapshots (six hours of the next day) and that day's bill arrive
        moments = DemoWindow(first=datetime(2026, 11, 1, tzinfo=UTC),
                             last=datetime(2026, 11, 1, 6, tzinfo=UTC),
                             step=timedelta(minutes=15))
        assert backfill(store, fleet, moments) == (25, 0)
        next_bill = run_cli("charges", "--from", str(FIRST_SNAPSHOT_DAY), "--to",
                            str(FIRST_SNAPSHOT_DAY), home=home, env=env)
        assert next_bill.returncode == 0, next_bill.stderr

    result = build_at_cadence(home)
    assert not result.full and result.updated_in_place
    assert result.window == (FIRST_SNAPSHOT_DAY, FIRST_SNAPSHOT_DAY)
    got, want = _snapshot_of_models(home), _snapshot_of_models(_build_copy(home, tmp_path / "f"))
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name
    # and the history the snapshots brought is really there
    assert query(home, "SELECT count(*) FROM snapshots").rows == [(25,)]
    assert query(home, "SELECT count(*) FROM cost_reconciliation WHERE day = ? AND "
                       "estimated_cost IS NOT NULL", params=[FIRST_SNAPSHOT_DAY]).rows[0][0] > 0
    reliability = run_cli("report", "reliability", "--from", str(FIRST_SNAPSHOT_DAY), "--to",
                          str(FIRST_SNAPSHOT_DAY), "--out", str(tmp_path / "r2"), home=home)
    assert reliability.returncode == 0, reliability.stderr


def _bill_tables_hold_the_bills(home: Path, bills: dict[date, float | None]) -> None:
    """billed_daily, spend_daily and cost_reconciliation of a bills-only warehouse."""
    by_day = "SELECT day, sum(total_cost) FROM {} GROUP BY day ORDER BY day"
    for table in ("billed_daily", "spend_daily"):
        rows = query(home, by_day.format(table)).rows
        assert [d for d, _ in rows] == list(bills), table
        assert [t for _, t in rows] == pytest.approx(list(bills.values()), abs=1e-9), table
    assert query(home, "SELECT DISTINCT cost_source FROM spend_daily").rows == [("billed",)]
    [(rows, billed_only, estimated, seen)] = query(home, """
        SELECT count(*), count(*) FILTER (WHERE status = 'billed_only'),
               count(estimated_cost), count(*) FILTER (WHERE coverage > 0)
        FROM cost_reconciliation""").rows
    [(instance_days,)] = query(home, "SELECT count(*) FROM billed_daily "
                                     "WHERE contract_type = 'instance'").rows
    assert rows == billed_only == instance_days > 0
    assert estimated == seen == 0
    # no snapshot at all that day: the reason says so, not "shorter than an interval"
    assert query(home, "SELECT DISTINCT likely_reason FROM cost_reconciliation").rows == [
        ("no snapshot covered the day (collection was not running)",)]
    for table in ("snapshots", "instance_intervals", "estimated_cost_daily", "fleet_now",
                  "incidents"):
        assert query(home, f"SELECT count(*) FROM {table}").rows == [(0,)], table
