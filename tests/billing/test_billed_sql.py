"""Billed charges in the warehouse: billed_daily, cost_reconciliation and the bill-log check,
on a hand-built scenario whose expected numbers are worked out in the comments.

Snapshots every 15 minutes cover day D1 = 2026-11-16 whole (00:00 .. D2 00:00), so an
instance running all day at $r/hour is estimated at 24 x r (storage is free here).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from pipeline.warehouse.marts import MART_CHECK_TABLES, check_marts
from tests.support.bill_fixtures import day_end, item, write_bill, write_charges
from tests.support.sql_fixtures import RUN, every, instance_rows, write_history
from tests.support.warehouse import build_at_cadence, query_rows

D1, D2, D3 = date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18)
APPROX = {"abs": 1e-9}


def _history(home: Path) -> None:
    t = every("2026-11-16 00:00", 97)  # D1 00:00 .. D2 00:00
    free = {"storage_total_cost": 0.0}
    rows = []
    for iid, rate in ((1, 1.0), (2, 0.5), (3, 2.0), (5, 0.25)):
        rows += instance_rows("acct", iid, t, [RUN] * len(t), dph_base=rate, **free,
                              label=f"job-{iid}")
    # 7 reprices at 12:00 from $1 to $2: estimate 12 x 1 + 12 x 2 = 36.
    rows += instance_rows("acct", 7, t, [{"dph_base": 1.0 if x.hour < 12 and x.day == 16
                                          else 2.0} for x in t], **RUN, **free)
    # account `gap`: no snapshot 10:00 .. 11:45; the 09:45 interval is capped at 30 min, so
    # 1.75 h are unobserved: coverage (24 - 1.75) / 24, estimate of 8 = 22.25.
    g = [x for x in t if not (10 <= x.hour < 12 and x.day == 16)]
    rows += instance_rows("gap", 8, g, [RUN] * len(g), dph_base=1.0, **free)
    write_history(home, rows)


def _bills(home: Path) -> None:
    d1 = [
        item(1, "gpu", 24.0, quantity=24.0, unit="hours", unit_price=1.0, label="job-1"),
        item(1, "bwd", 0.005, quantity=0.5, unit="GB"),
        item(2, "gpu", 12.0, quantity=24.0, unit="hours", unit_price=0.5),
        item(2, "disk", 0.0),
        item(2, "bwd", 0.3, quantity=30.0, unit="GB"),
        item(2, "bwu", 0.2, quantity=10.0, unit="GB"),
        item(3, "gpu", 40.0, quantity=20.0, unit="hours", unit_price=2.0),
        item(4, "gpu", 0.3, quantity=0.1, unit="hours", unit_price=3.0, label="blink"),
        item(7, "gpu", 36.6, quantity=24.0, unit="hours", unit_price=1.525),
        item(900, "disk", 1.5, contract_type="volume"),
        item(3, "other", 0.25, description=None),
        # left-overs of an earlier, superseded fetch in the same file: not the bill
        {**item(1, "gpu", 99.0), "fetch_id": "stale"},
    ]
    # D1 fetched exactly 48 h after it ended: not final yet (final needs *more* than 48 h).
    write_bill(home, "acct", D1, d1, fetch_id="d1", fetched_at=day_end(D1) + timedelta(hours=48))
    write_bill(home, "acct", D2, [item(1, "gpu", 5.0)], fetch_id="d2a",
               fetched_at=day_end(D2) + timedelta(hours=1))
    # D3: a fetch killed before its log row: charges on disk, no commit record.
    write_charges(home, "acct", D3, [item(1, "gpu", 77.0)], fetch_id="killed",
                  fetched_at=day_end(D3) + timedelta(hours=1))
    write_bill(home, "gap", D1, [item(8, "gpu", 24.0, quantity=24.0, unit="hours",
                                      unit_price=1.0)],
               fetch_id="g1", fetched_at=day_end(D1) + timedelta(hours=48, seconds=1))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("billed") / "home"
    path.mkdir()
    _history(path)
    _bills(path)
    build_at_cadence(path, full=True)
    return path


def recon(home: Path, account: str, day: date, iid: int) -> dict:
    found = query_rows(home, "SELECT * FROM cost_reconciliation WHERE account = ? AND day = ? "
                       "AND instance_id = ?", [account, day, iid])
    assert len(found) == 1, found
    return found[0]


def test_billed_daily_splits_items_and_ignores_uncommitted_rows(home: Path) -> None:
    two = query_rows(home, "SELECT * FROM billed_daily WHERE day = ? AND instance_id = 2", [D1])[0]
    assert two["gpu_cost"] == pytest.approx(12.0, **APPROX)
    assert two["storage_cost"] == 0.0
    assert two["bandwidth_down_cost"] == pytest.approx(0.3, **APPROX)
    assert two["bandwidth_up_cost"] == pytest.approx(0.2, **APPROX)
    assert two["bandwidth_cost"] == pytest.approx(0.5, **APPROX)
    assert two["total_cost"] == pytest.approx(12.5, **APPROX)
    assert two["billed_hours"] == 24.0 and two["bandwidth_down_gb"] == 30.0
    one = query_rows(home, "SELECT * FROM billed_daily WHERE day = ? AND instance_id = 1", [D1])[0]
    assert one["gpu_cost"] == 24.0  # the stale 99.0 row is not part of the bill
    assert one["label"] == "job-1"
    three = query_rows(home, "SELECT * FROM billed_daily WHERE day = ? AND instance_id = 3",
                       [D1])[0]
    assert three["other_cost"] == 0.25 and three["total_cost"] == pytest.approx(40.25)
    assert three["billed_hours"] == 20.0
    # a killed fetch (charges without a log row) is not a bill
    assert query_rows(home, "SELECT * FROM billed_daily WHERE day = ?", [D3]) == []
    assert query_rows(home, "SELECT * FROM billed_charges WHERE day = ?", [D3]) == []


def test_billed_hours_null_when_not_parsed(home: Path) -> None:
    (row,) = query_rows(home, "SELECT billed_hours FROM billed_daily WHERE day = ?", [D2])
    assert row["billed_hours"] is None


def test_volume_contracts_stay_in_the_totals(home: Path) -> None:
    (vol,) = query_rows(home, "SELECT * FROM billed_daily WHERE contract_type = 'volume'")
    assert vol["instance_id"] is None and vol["contract_id"] == 900
    assert vol["storage_cost"] == 1.5
    # D1 of acct: 24.005 + 12.5 + 40.25 + 0.3 + 36.6 + 1.5 = 115.155, the logged total
    (tot,) = query_rows(home, "SELECT sum(total_cost) AS s FROM billed_daily "
                        "WHERE account = 'acct' AND day = ?", [D1])
    assert tot["s"] == pytest.approx(115.155, **APPROX)
    (log,) = query_rows(home, "SELECT total_amount FROM billed_days WHERE account = 'acct' "
                        "AND day = ?", [D1])
    assert log["total_amount"] == pytest.approx(115.155, **APPROX)
    # volumes are not instances: not in the reconciliation
    assert query_rows(home, "SELECT * FROM cost_reconciliation WHERE instance_id IS NULL") == []


def test_is_final_boundary_is_more_than_48_hours(home: Path) -> None:
    final = {(r["account"], r["day"]): r["is_final"]
             for r in query_rows(home, "SELECT account, day, is_final FROM billed_days")}
    assert final == {("acct", D1): False, ("acct", D2): False, ("gap", D1): True}
    assert {r["is_final"] for r in query_rows(home, "SELECT is_final FROM billed_daily "
                                              "WHERE account = 'gap'")} == {True}


@pytest.mark.parametrize(("iid", "estimated", "billed", "status", "reason"), [
    # |0.005| <= max(0.01, 1 % of 24.005): matched, no reason
    (1, 24.0, 24.005, "matched", None),
    # 12.5 - 12.0 = 0.5, all of it the bill's bandwidth
    (2, 12.0, 12.5, "differs", "bandwidth (not in snapshots)"),
    (3, 48.0, 40.25, "differs", "state changes between snapshots"),
    (4, None, 0.3, "billed_only", "never seen by a snapshot (shorter than a snapshot interval)"),
    (5, 6.0, None, "estimated_only", "not in the bill"),
    (7, 36.0, 36.6, "differs", "price change between snapshots"),
])
def test_reconciliation_status_and_reason(home: Path, iid: int, estimated: float | None,
                                          billed: float | None, status: str,
                                          reason: str | None) -> None:
    r = recon(home, "acct", D1, iid)
    assert r["status"] == status and r["likely_reason"] == reason
    if estimated is None:
        assert r["estimated_cost"] is None and r["difference"] is None
    else:
        assert r["estimated_cost"] == pytest.approx(estimated, **APPROX)
    if billed is None:
        assert r["billed_cost"] is None and r["difference_pct"] is None
    else:
        assert r["billed_cost"] == pytest.approx(billed, **APPROX)
    if estimated is not None and billed is not None:
        assert r["difference"] == pytest.approx(billed - estimated, **APPROX)
        assert r["difference_pct"] == pytest.approx(100 * (billed - estimated) / billed)
    assert r["coverage"] == pytest.approx(1.0, **APPROX)
    assert r["day_billed"] is True and r["is_final"] is False


def test_reconciliation_bandwidth_and_low_coverage(home: Path) -> None:
    assert recon(home, "acct", D1, 2)["bandwidth_cost"] == pytest.approx(0.5)
    assert recon(home, "acct", D1, 5)["bandwidth_cost"] is None
    r = recon(home, "gap", D1, 8)
    assert r["coverage"] == pytest.approx((24 - 1.75) / 24, **APPROX)
    assert r["estimated_cost"] == pytest.approx(22.25, **APPROX)
    assert (r["status"], r["likely_reason"]) == ("differs", "missed collection (low coverage)")
    assert r["is_final"] is True


def test_billed_day_without_snapshots_is_billed_only(home: Path) -> None:
    # D2 has no interval (the D2 00:00 snapshot is the last): coverage 0
    r = recon(home, "acct", D2, 1)
    assert r["estimated_cost"] is None and r["billed_cost"] == 5.0
    assert r["coverage"] == 0.0
    assert (r["status"], r["likely_reason"]) == (
        "billed_only", "no snapshot covered the day (collection was not running)")


def test_unbilled_day_is_estimated_only_not_fetched(tmp_path: Path) -> None:
    _history(tmp_path)
    build_at_cadence(tmp_path, full=True)
    r = recon(tmp_path, "acct", D1, 1)
    assert r["billed_cost"] is None and r["estimated_cost"] == pytest.approx(24.0)
    assert (r["status"], r["likely_reason"]) == ("estimated_only", "bill not fetched yet")
    assert r["day_billed"] is False
    assert query_rows(tmp_path, "SELECT count(*) AS n FROM billed_daily")[0]["n"] == 0


def test_refetched_day_replaces_and_rebuilds_cheaply(tmp_path: Path) -> None:
    _history(tmp_path)
    _bills(tmp_path)
    build_at_cadence(tmp_path, full=True)
    write_bill(tmp_path, "acct", D2, [item(1, "gpu", 6.5), item(1, "bwd", 0.25)],
               fetch_id="d2b", fetched_at=day_end(D2) + timedelta(hours=49))
    result = build_at_cadence(tmp_path)
    assert not result.full and result.days_recomputed == 0
    (row,) = query_rows(tmp_path, "SELECT * FROM billed_daily WHERE day = ?", [D2])
    assert row["total_cost"] == pytest.approx(6.75) and row["fetch_id"] == "d2b"
    assert row["is_final"] is True


def test_mart_check_passes_without_holes(home: Path) -> None:
    outcomes = {o.name: o for o in check_marts(home)}
    assert outcomes["bill_days_complete"].passed, outcomes["bill_days_complete"].detail
    assert MART_CHECK_TABLES["bill_days_complete"] == "billed_daily"


def test_mart_check_fails_on_a_hole(tmp_path: Path) -> None:
    _history(tmp_path)
    write_bill(tmp_path, "acct", D1, [item(1, "gpu", 24.0)], fetch_id="a",
               fetched_at=day_end(D1) + timedelta(hours=60))
    write_bill(tmp_path, "acct", D3, [item(1, "gpu", 1.0)], fetch_id="c",
               fetched_at=day_end(D3) + timedelta(hours=60))
    build_at_cadence(tmp_path, full=True)
    outcome = {o.name: o for o in check_marts(tmp_path)}["bill_days_complete"]
    assert not outcome.passed
    assert outcome.detail == "1 days missing from a bill log between its first and last fetched day"
