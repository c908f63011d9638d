"""spend_items (the best-known spend per day, contract and item), spend_daily (its daily sum)
and the FOCUS export (its rows), on real DuckDB over real Parquet.

The home is the hand-made scenario (tests/support/report_fixtures.py) with hand-written bills:
- account `main` is billed every day 2026-11-16..20: instance 101 (gpu, disk, download,
  upload), 104 (gpu, disk), a volume 900 whose description states no quantity; on 11-16
  also 106 billed below its list rate (24 h at $1.000/h, $90 charged) and two items of 104
  that are both `other` (a promo credit and a residual); on 11-17 also 999, which no
  snapshot ever saw.
- account `lab` is billed 11-16..18 (instance 201) and not on 11-19 and 11-20: estimated.
Expected figures are worked out here from the bill rows written (`BILLS`) and from the
scenario's plain-Python oracle (tests/support/scenario_oracle.py), never by the product's SQL.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.reports.focus import export_focus
from tests.support.bill_fixtures import (
    WEEK_DAYS,
    item,
    scenario_lab_bill,
    scenario_main_bill,
    simulated_week_home,
    write_bill,
)
from tests.support.report_fixtures import build_warehouse, query, scenario_history, scenario_specs
from tests.support.scenario_oracle import Scenario
from tests.support.warehouse import query_rows

D0, D4 = date(2026, 11, 16), date(2026, 11, 20)
DAYS = [D0 + timedelta(days=i) for i in range(5)]
LAB_BILLED = DAYS[:3]
FETCHED = datetime(2026, 11, 23, 6, tzinfo=UTC)  # > 48 h after 11-20 ended: all final
# the test's own reading of Vast.ai's item types (the model's is billed_charges.item)
ITEM = {"gpu": "gpu", "disk": "storage", "bwd": "bandwidth_down", "bwu": "bandwidth_up"}


def _main_bill(day: date) -> list[dict[str, Any]]:
    """The scenario's bill, with a credit, a rounding item and one more instance on D0."""
    rows = scenario_main_bill(day)
    if day == D0:
        rows += [item(106, "gpu", 90.0, quantity=24.0, unit="hours", unit_price=1.0),
                 item(104, "credit", -1.0, description="promo credit"),
                 item(104, "other", 0.002, description="rounding")]
    return rows


# (account, day) -> the bill's rows, as written
BILLS: dict[tuple[str, date], list[dict[str, Any]]] = {
    **{("main", d): _main_bill(d) for d in DAYS},
    **{("lab", d): scenario_lab_bill() for d in LAB_BILLED},
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spend_items") / "home"
    path.mkdir()
    scenario_history(path)
    for i, ((account, day), rows) in enumerate(BILLS.items()):
        write_bill(path, account, day, rows, fetch_id=f"f{i}", fetched_at=FETCHED)
    build_warehouse(path)
    return path


def _items(home: Path) -> dict[tuple, dict[str, Any]]:
    """spend_items by (account, day, contract_type, contract_id, item); asserts the grain."""
    rows = query_rows(home, "SELECT * FROM spend_items")
    out = {(r["account"], r["day"], r["contract_type"], r["contract_id"], r["item"]): r
           for r in rows}
    assert len(out) == len(rows), "spend_items has one row per (day, contract, item)"
    return out


def _expected_bill_items() -> dict[tuple, dict[str, float]]:
    """Cost, list cost and stated quantity per bill item, summed from BILLS in Python."""
    out: dict[tuple, dict[str, float]] = defaultdict(lambda: {"cost": 0.0, "list": 0.0})
    for (account, day), rows in BILLS.items():
        for r in rows:
            key = (account, day, r["contract_type"], r["contract_id"],
                   ITEM.get(r["item_type"], "other"))
            out[key]["cost"] += r["amount"]
            rate = r["unit_price"] if r["unit_price"] is not None else (
                r["amount"] / r["quantity"] if r["quantity"] else None)
            out[key]["list"] += rate * r["quantity"] if rate is not None else r["amount"]
    return dict(out)


def test_billed_rows_are_the_bills_items(home: Path) -> None:
    items = _items(home)
    billed = {k: v for k, v in items.items() if v["cost_source"] == "billed"}
    expected = _expected_bill_items()
    assert set(billed) == set(expected)
    for key, want in expected.items():
        assert billed[key]["cost"] == pytest.approx(want["cost"], abs=1e-12), key
        assert billed[key]["list_cost"] == pytest.approx(want["list"], abs=1e-12), key
        assert billed[key]["is_final"] is True, key


def test_download_and_upload_apart_with_list_rates(home: Path) -> None:
    items = _items(home)
    got = {k[-1]: (r["cost"], r["quantity"], r["quantity_unit"], r["list_unit_price"],
                   r["list_cost"])
           for k, r in items.items() if k[:4] == ("main", D0, "instance", 101)}
    # the rate stated in the description, else amount / quantity (0.10 / 10 GB)
    assert got == {
        "gpu": (19.20, 24.0, "Hours", 0.80, pytest.approx(0.80 * 24)),
        "storage": (0.48, 24.0, "Hours", 0.02, pytest.approx(0.02 * 24)),
        "bandwidth_down": (0.10, 10.0, "GB", pytest.approx(0.10 / 10), pytest.approx(0.10)),
        "bandwidth_up": (0.05, 5.0, "GB", pytest.approx(0.05 / 5), pytest.approx(0.05)),
    }
    below_list = items[("main", D0, "instance", 106, "gpu")]
    assert (below_list["cost"], below_list["list_unit_price"], below_list["list_cost"]) == (
        90.0, 1.0, 24.0)
    # a volume whose description states no quantity: one unit of 'Charges' at its amount
    volume = items[("main", D0, "volume", 900, "storage")]
    assert (volume["quantity"], volume["quantity_unit"], volume["list_unit_price"]) == (
        1.0, "Charges", 0.50)
    assert volume["instance_id"] is None and volume["gpu_name"] is None
    assert volume["instance_hours"] is None and volume["gpu_hours"] is None
    # two item types the model does not know are one `other` row
    other = items[("main", D0, "instance", 104, "other")]
    assert other["cost"] == pytest.approx(-1.0 + 0.002, abs=1e-12)
    assert (other["quantity"], other["quantity_unit"]) == (1.0, "Charges")
    assert other["item_description"] == "promo credit; rounding"


def test_billed_gpu_hours_and_attributes(home: Path) -> None:
    items = _items(home)
    specs = {s.id: s for s in scenario_specs()}
    h100 = items[("main", D0, "instance", 104, "gpu")]
    spec = specs[104]
    assert (h100["gpu_name"], h100["num_gpus"], h100["machine_id"], h100["host_id"],
            h100["country"], h100["is_bid"]) == (spec.gpu_name, spec.num_gpus,
                                                 spec.machine_id, spec.host_id, spec.country,
                                                 spec.is_bid)
    # the bill's stated hours, and those x the GPU count
    assert (h100["instance_hours"], h100["gpu_hours"]) == (24.0, 24.0 * spec.num_gpus)
    assert items[("main", D0, "instance", 104, "storage")]["instance_hours"] is None
    assert h100["label"] == spec.label
    # never seen by a snapshot: the bill's hours and label, no attributes, no GPU count
    blink = items[("main", DAYS[1], "instance", 999, "gpu")]
    assert (blink["label"], blink["gpu_name"], blink["instance_hours"], blink["gpu_hours"]) == (
        "blink", None, 0.1, None)


def test_estimated_items_only_where_no_bill(home: Path) -> None:
    items = _items(home)
    estimated = {k: v for k, v in items.items() if v["cost_source"] == "estimated"}
    # only lab's unbilled days; a billed account-day has no estimated row
    assert {(k[0], k[1]) for k in estimated} == {("lab", DAYS[3]), ("lab", DAYS[4])}
    assert {(k[0], k[1]) for k, v in items.items() if v["cost_source"] == "billed"
            and k[0] == "lab"} == {("lab", d) for d in LAB_BILLED}
    spec = next(s for s in scenario_specs() if s.id == 201)
    pieces = [p for p in Scenario().pieces if p.instance_id == 201]
    for day in DAYS[3:]:
        day_pieces = [p for p in pieces if p.day == day]
        running = sum(p.running_hours for p in day_pieces)
        observed = sum(p.hours for p in day_pieces)  # 201 runs throughout: storage billed
        gpu = items[("lab", day, "instance", 201, "gpu")]
        storage = items[("lab", day, "instance", 201, "storage")]
        assert gpu["cost"] == pytest.approx(sum(p.gpu_cost for p in day_pieces), abs=1e-9)
        assert storage["cost"] == pytest.approx(sum(p.storage_cost for p in day_pieces),
                                                abs=1e-9)
        assert (gpu["quantity"], gpu["quantity_unit"]) == (pytest.approx(running), "Hours")
        assert storage["quantity"] == pytest.approx(observed)
        assert gpu["list_unit_price"] == pytest.approx(spec.dph_base)
        assert storage["list_unit_price"] == pytest.approx(spec.storage)
        assert gpu["list_cost"] == gpu["cost"] and storage["list_cost"] == storage["cost"]
        assert gpu["instance_hours"] == pytest.approx(running)
        assert gpu["gpu_hours"] == pytest.approx(running * spec.num_gpus)
        assert gpu["is_final"] is None and gpu["item_description"] is None
        assert {k[-1] for k in estimated if k[1] == day} == {"gpu", "storage"}
    # 11-20: the collection gap (1.75 h unobserved) and the newest snapshot (no interval)
    assert items[("lab", DAYS[4], "instance", 201, "gpu")]["quantity"] == pytest.approx(22.0)


def test_spend_daily_is_the_sum_of_spend_items(home: Path) -> None:
    parts = {"gpu": "gpu_cost", "storage": "storage_cost", "bandwidth_down":
             "bandwidth_down_cost", "bandwidth_up": "bandwidth_up_cost", "other": "other_cost"}
    want: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (account, day, ctype, cid, it), r in _items(home).items():
        sums = want[(account, day, ctype, cid)]
        sums[parts[it]].append(r["cost"])
        sums["total_cost"].append(r["cost"])
        if it == "gpu":
            sums["instance_hours"].append(r["instance_hours"])
            sums["gpu_hours"].append(r["gpu_hours"])
    daily = query_rows(home, "SELECT * FROM spend_daily")
    got = {(r["account"], r["day"], r["contract_type"], r["contract_id"]): r for r in daily}
    assert len(got) == len(daily) and set(got) == set(want)
    for key, sums in want.items():
        row = got[key]
        for column in (*parts.values(), "total_cost"):
            assert round(row[column], 9) == round(math.fsum(sums[column]), 9), (key, column)
        assert row["bandwidth_cost"] == pytest.approx(
            row["bandwidth_down_cost"] + row["bandwidth_up_cost"], abs=1e-12)
        for column in ("instance_hours", "gpu_hours"):
            known = [v for v in sums[column] if v is not None]
            if known:
                assert round(row[column], 9) == round(math.fsum(known), 9), (key, column)
            elif key[2] == "instance" and not sums[column]:  # no gpu item: GPU not billed
                assert row[column] == 0, (key, column)
            else:  # a gpu item's hours unknown, or a volume (no GPU)
                assert row[column] is None, (key, column)


def _cents(value: float) -> int:
    return round(float(value) * 100)


def test_focus_billed_cost_and_spend_daily_agree_to_the_cent(home: Path, tmp_path: Path
                                                             ) -> None:
    out = tmp_path / "focus.parquet"
    result = export_focus(home, date_from=D0, date_to=D4, out=out)
    rows = pq.read_table(out).to_pylist()
    (spend,) = query(home, "SELECT sum(total_cost) FROM spend_daily WHERE day BETWEEN ? AND ?",
                     [D0, D4])[0]
    # independently: every bill row's amount, plus the oracle's estimate of lab's unbilled days
    billed = math.fsum(r["amount"] for rows_ in BILLS.values() for r in rows_)
    unbilled = math.fsum(gpu + storage for (account, _iid, day), (gpu, storage)
                         in Scenario().daily_cost(D0, D4).items()
                         if account == "lab" and day not in LAB_BILLED)
    focus_total = sum(r["BilledCost"] for r in rows)
    assert _cents(focus_total) == _cents(spend) == _cents(billed + unbilled)
    assert _cents(result.total_billed_cost) == _cents(focus_total)
    assert float(sum(r["BilledCost"] for r in rows if r["x_CostSource"] == "billed")) == \
        pytest.approx(billed, abs=1e-9)
    # one FOCUS row per spend_items row, its charge period the UTC day
    assert len(rows) == len(_items(home))
    for r in rows:
        start = r["ChargePeriodStart"]
        assert (start.hour, start.minute, start.second) == (0, 0, 0)
        assert r["ChargePeriodEnd"] - start == timedelta(days=1)
    gpu = next(r for r in rows if r["ResourceId"] == "106" and r["ServiceCategory"] == "Compute")
    assert (gpu["BilledCost"], gpu["ListCost"], gpu["ListUnitPrice"], gpu["PricingQuantity"]) \
        == (90, 24, 1, 24)
    for account in ("main", "lab"):
        (one,) = query(home, "SELECT sum(total_cost) FROM spend_daily WHERE account = ?",
                       [account])[0]
        assert _cents(sum(r["BilledCost"] for r in rows if r["BillingAccountId"] == account)) \
            == _cents(one), account


def test_a_simulated_week_agrees_with_its_stored_bill(tmp_path: Path) -> None:
    """Bills fetched over HTTP from the simulator: per day, spend_daily's billed total and
    the FOCUS BilledCost equal the committed bill's rows read straight from its Parquet;
    the week's totals agree to the cent."""
    home = tmp_path / "home"
    home.mkdir()
    simulated_week_home(home)
    build_warehouse(home)
    rows = pq.read_table(export_focus(home, date_from=WEEK_DAYS[0], date_to=WEEK_DAYS[-1],
                                      out=tmp_path / "focus.parquet").path).to_pylist()
    daily = dict(query(home, "SELECT day, sum(total_cost) FROM spend_daily GROUP BY day"))
    focus_daily: dict[date, float] = defaultdict(float)
    for r in rows:
        focus_daily[r["ChargePeriodStart"].date()] += float(r["BilledCost"])
    bills = home / "parquet"
    for day in WEEK_DAYS[:-1]:
        part = f"account=default/day={day.isoformat()}"
        (log,) = pq.read_table(bills / "billed_days" / part, partitioning=None).to_pylist()
        charges = pq.read_table(bills / "billed_charges" / part, partitioning=None).to_pylist()
        stored = math.fsum(c["amount"] for c in charges if c["fetch_id"] == log["fetch_id"])
        assert stored > 0
        assert daily[day] == pytest.approx(stored, abs=1e-9), day
        assert focus_daily[day] == pytest.approx(stored, abs=1e-9), day
        download = math.fsum(c["amount"] for c in charges
                             if c["fetch_id"] == log["fetch_id"] and c["item_type"] == "bwd")
        net = [r for r in rows if r["ChargePeriodStart"].date() == day
               and r["SkuId"] == "network/download"]
        assert float(sum(r["BilledCost"] for r in net)) == pytest.approx(download, abs=1e-9)
    assert _cents(sum(r["BilledCost"] for r in rows)) == _cents(sum(daily.values()))
