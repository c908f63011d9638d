"""FOCUS 1.2 export: required columns, types, periods, and the scenario's costs.

The warehouse is the real build over the hand-made scenario (tests/support/report_fixtures.py);
costs are compared with what the scenario works out to (tests/support/scenario_oracle.py).
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.errors import ReportError
from pipeline.reports.focus import export_focus
from tests.support.report_fixtures import (
    build_warehouse,
    delete_model_files,
    query,
    scenario_history,
    scenario_home,
)
from tests.support.scenario_oracle import Scenario

D0, D1 = date(2026, 11, 16), date(2026, 11, 20)

MONEY_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
# Non-null for every Usage row (FOCUS mandatory columns, and conditional ones we always fill).
NON_NULL = (*MONEY_COLUMNS, "BillingAccountId", "BillingAccountName", "BillingCurrency",
            "BillingPeriodStart", "BillingPeriodEnd", "ChargeCategory", "ChargeDescription",
            "ChargePeriodStart", "ChargePeriodEnd", "InvoiceIssuerName", "ProviderName",
            "PublisherName", "ServiceProviderName", "HostProviderName", "PricingQuantity",
            "PricingUnit", "ServiceCategory", "ServiceName", "ResourceId", "ResourceName",
            "ResourceType", "ConsumedQuantity", "ConsumedUnit", "PricingCategory", "RegionId",
            "ListUnitPrice", "ContractedUnitPrice", "Tags", "ChargeFrequency", "x_IsEstimate")
CUSTOM = ("x_GpuName", "x_NumGpus", "x_GpuHours", "x_InstanceHours", "x_MachineId",
          "x_HostId", "x_Reliability2", "x_IsEstimate", "x_CostSource", "x_BillIsFinal")
TIMES = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scenario_home(tmp_path_factory, "focus")


@pytest.fixture(scope="module")
def export(home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, object]:
    out = tmp_path_factory.mktemp("focus_out") / "focus.parquet"
    result = export_focus(home, date_from=D0, date_to=D1, out=out)
    return pq.read_table(out), result


def _day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def test_required_columns_present_typed_and_ordered(export: tuple) -> None:
    table, _ = export
    names = table.column_names
    for name in (*NON_NULL, "ChargeClass", "InvoiceId", "SkuId", "RegionName", *CUSTOM):
        assert name in names, name
    first_custom = min(i for i, n in enumerate(names) if n.startswith("x_"))
    assert all(n.startswith("x_") for n in names[first_custom:])
    for name in (*MONEY_COLUMNS, "PricingQuantity", "ConsumedQuantity", "ListUnitPrice"):
        assert pa.types.is_decimal(table.schema.field(name).type), name
    for name in TIMES:
        assert table.schema.field(name).type == pa.timestamp("us", tz="UTC"), name
    assert table.schema.field("x_IsEstimate").type == pa.bool_()
    for name in NON_NULL:
        assert table[name].null_count == 0, name
    assert table["ChargeClass"].null_count == table.num_rows


def test_values_follow_focus(export: tuple) -> None:
    rows = export[0].to_pylist()
    assert rows
    assert {r["ChargeCategory"] for r in rows} == {"Usage"}
    assert {r["BillingCurrency"] for r in rows} == {"USD"}
    assert {r["ServiceCategory"] for r in rows} == {"Compute", "Storage"}
    for col in ("ProviderName", "PublisherName", "InvoiceIssuerName", "ServiceProviderName",
                "HostProviderName"):
        assert {r[col] for r in rows} == {"Vast.ai"}, col
    assert all(r["x_IsEstimate"] is True for r in rows)
    assert all(r["BilledCost"] >= 0 and r["PricingQuantity"] > 0 for r in rows)


def test_periods_are_utc_half_open_within_one_day(export: tuple) -> None:
    t0, t1 = _day_start(D0), _day_start(D1) + timedelta(days=1)
    for r in export[0].to_pylist():
        s, e = r["ChargePeriodStart"], r["ChargePeriodEnd"]
        assert s < e and t0 <= s and e <= t1
        assert e <= _day_start(s.date()) + timedelta(days=1)  # never crosses midnight
        assert r["BillingPeriodStart"] <= s < r["BillingPeriodEnd"]
        assert r["BillingPeriodStart"] == datetime(s.year, s.month, 1, tzinfo=UTC)


def test_costs_equal_the_scenario(export: tuple) -> None:
    table, result = export
    rows = table.to_pylist()
    got: dict[tuple, dict[str, Decimal]] = {}
    for r in rows:
        key = (r["BillingAccountId"], int(r["ResourceId"]), r["ChargePeriodStart"].date())
        part = got.setdefault(key, {"Compute": Decimal(0), "Storage": Decimal(0)})
        part[r["ServiceCategory"]] += r["BilledCost"]
    expected = Scenario().daily_cost(D0, D1)
    assert set(got) == set(expected)
    for key, (gpu, storage) in expected.items():
        assert float(got[key]["Compute"]) == pytest.approx(gpu, abs=1e-8), key
        assert float(got[key]["Storage"]) == pytest.approx(storage, abs=1e-8), key
    total = Scenario().cost(D0, D1)["window_spend"]
    assert float(result.total_billed_cost) == pytest.approx(total, abs=1e-6)
    assert result.rows == len(rows)
    assert sum(r["BilledCost"] for r in rows) == result.total_billed_cost


def test_bid_instance_is_dynamic_and_tags_carry_the_label(home: Path, export: tuple) -> None:
    rows = export[0].to_pylist()
    bid = {iid for (iid,) in query(home, "SELECT DISTINCT instance_id FROM estimated_cost_daily "
                                         "WHERE is_bid")}
    assert bid == {102}
    for r in rows:
        assert r["PricingCategory"] == ("Dynamic" if int(r["ResourceId"]) in bid else "Standard")
    labels = dict(query(home, "SELECT instance_id, any_value(label) FROM estimated_cost_daily "
                              "GROUP BY 1"))
    countries = dict(query(home, "SELECT instance_id, any_value(country) FROM estimated_cost_daily "
                                 "GROUP BY 1"))
    for r in rows:
        iid = int(r["ResourceId"])
        tags = json.loads(r["Tags"])
        assert tags == ({"label": labels[iid]} if labels[iid] else {})
        assert r["RegionId"] == countries[iid]


def test_csv_and_account_and_window(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "lab.csv"
    result = export_focus(home, date_from=date(2026, 11, 17), date_to=date(2026, 11, 17),
                          out=out, account="lab")
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == result.rows > 0
    assert {r["BillingAccountId"] for r in rows} == {"lab"}
    assert all(r["ChargePeriodStart"].startswith("2026-11-17T") and
               r["ChargePeriodStart"].endswith("Z") for r in rows)
    expected = query(home, "SELECT sum(total_cost) FROM estimated_cost_daily WHERE account = 'lab' "
                           "AND day = DATE '2026-11-17'")[0][0]
    assert sum(float(r["BilledCost"]) for r in rows) == pytest.approx(expected, abs=1e-8)


def test_errors(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"\.parquet or \.csv"):
        export_focus(home, date_from=D0, date_to=D1, out=tmp_path / "focus.xlsx")
    with pytest.raises(ReportError, match=r"^No data between 2027-01-01 and 2027-01-02"):
        export_focus(home, date_from=date(2027, 1, 1), date_to=date(2027, 1, 2),
                     out=tmp_path / "f.parquet")
    with pytest.raises(ReportError, match=r"run `vast-pipeline build` first\.$"):
        export_focus(tmp_path, date_from=D0, date_to=D1, out=tmp_path / "f.parquet")
    assert not (tmp_path / "f.parquet").exists()
    with pytest.raises(ReportError, match=r"^--from 2026-11-20 is after --to 2026-11-16; "):
        export_focus(home, date_from=D1, date_to=D0, out=tmp_path / "f.parquet")
    assert not (tmp_path / "f.parquet").exists()


def test_export_reads_only_warehouse_tables_and_an_old_warehouse_is_one_sentence(
        tmp_path: Path) -> None:
    """The export reads the warehouse's spend_items table alone: with the daily models'
    Parquet gone it writes the same rows; a warehouse without spend_items (built by an
    older version) is one sentence that says to build."""
    import duckdb

    damaged = tmp_path / "home"
    damaged.mkdir()
    scenario_history(damaged)
    build_warehouse(damaged)
    before = export_focus(damaged, date_from=D0, date_to=D1, out=tmp_path / "before.parquet")
    assert delete_model_files(damaged, "instance_intervals") > 0
    assert delete_model_files(damaged, "instance_daily") > 0
    after = export_focus(damaged, date_from=D0, date_to=D1, out=tmp_path / "after.parquet")
    assert pq.read_table(after.path).equals(pq.read_table(before.path))
    assert after.total_billed_cost == before.total_billed_cost > 0
    con = duckdb.connect(str(damaged / "warehouse.duckdb"))
    con.execute("DROP TABLE spend_items")
    con.close()
    with pytest.raises(ReportError) as err:
        export_focus(damaged, date_from=D0, date_to=D1, out=tmp_path / "f.parquet")
    message = str(err.value)
    assert message.startswith("The warehouse lacks a table this report reads (")
    assert message.endswith("run `vast-pipeline build` first.")
    assert "\n" not in message and err.value.__cause__ is None
    assert not (tmp_path / "f.parquet").exists()
