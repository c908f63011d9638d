"""Dagster: the code location loads, and real in-process runs materialize with their checks."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def defs(home: Path) -> dg.Definitions:
    from assets.definitions import defs

    return defs


def test_workspace_yaml_loads_the_definitions(home: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate",
         "-w", str(REPO / "workspace.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr


def test_asset_graph_has_lineage_from_collection_to_reports(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"raw_snapshots", "instance_snapshots", "warehouse/instance_intervals",
            "warehouse/cost_daily", "cost_report", "reliability_report"} <= keys
    cost_daily = dg.AssetKey(["warehouse", "cost_daily"])
    upstream = dg.AssetSelection.assets(cost_daily).upstream().resolve(graph)
    assert {dg.AssetKey(["warehouse", "instance_intervals"]), dg.AssetKey("instance_snapshots"),
            dg.AssetKey("raw_snapshots")} <= upstream
    downstream = dg.AssetSelection.assets(cost_daily).downstream().resolve(graph)
    assert dg.AssetKey("cost_report") in downstream
    schedule = defs.resolve_schedule_def("collect_schedule")
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_past_partition_cannot_be_fetched(defs: dg.Definitions, home: Path) -> None:
    from assets.collection import raw_snapshots
    from assets.resources import VastPipelineResource

    result = dg.materialize([raw_snapshots], partition_key="2025-06-01", raise_on_error=False,
                            resources={"vast": VastPipelineResource(home=str(home))})
    assert not result.success
    [failure] = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert "only tells the present" in description and "instance_snapshots" in description


def test_collect_build_and_report_in_process(defs: dg.Definitions, home: Path) -> None:
    """A scheduled run's work: collect today, derive Parquet, build models, write reports."""
    from assets.collection import instance_snapshots, raw_snapshots
    from assets.resources import VastPipelineResource

    resources = {"vast": VastPipelineResource(home=str(home))}
    today = datetime.now(UTC).date().isoformat()
    for _ in range(2):  # two snapshots make the first interval
        collected = dg.materialize([raw_snapshots, instance_snapshots], partition_key=today,
                                   resources=resources)
        assert collected.success
    evaluations = {c.check_name: c for c in collected.get_asset_check_evaluations()}
    # The drift check passes exactly when the landed rows carry no unknown field.
    glob = f"{home}/parquet/instance_snapshots/*/*/*.parquet"
    unknown = duckdb.execute(f"select count(*) from read_parquet('{glob}') "
                             "where extra_fields is not null").fetchone()[0]
    assert {name: c.passed for name, c in evaluations.items()} == {
        "unique_instance_snapshot": True, "instance_id_not_null": True,
        "prices_non_negative": True, "fresh_snapshots": True,
        "no_unexpected_schema_drift": unknown == 0}
    assert evaluations["no_unexpected_schema_drift"].severity == dg.AssetCheckSeverity.WARN
    assert evaluations["prices_non_negative"].severity == dg.AssetCheckSeverity.ERROR
    meta = collected.asset_materializations_for_node("instance_snapshots")[0].metadata
    assert meta["rows"].value > 0

    from assets.reports import cost_report, reliability_report
    from assets.warehouse import warehouse_models

    rest = dg.materialize([warehouse_models, cost_report, reliability_report],
                          resources=resources)
    assert rest.success
    mart_checks = rest.get_asset_check_evaluations()
    assert mart_checks and all(c.passed for c in mart_checks)
    assert list((home / "reports" / "cost_last_7_days").glob("*.html"))
    assert (home / "warehouse.duckdb").exists()


def test_warehouse_and_reports_follow_a_collection(defs: dg.Definitions) -> None:
    """The automation sensor's conditions: a new collection requests the models and reports,
    although most daily partitions of instance_snapshots were never collected."""
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert quiet.total_requested == 0
    today = datetime.now(UTC).date().isoformat()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="instance_snapshots", partition=today))
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
    for key in (["warehouse", "instance_intervals"], ["warehouse", "cost_daily"],
                ["cost_report"], ["reliability_report"]):
        assert after.get_num_requested(dg.AssetKey(key)) == 1, key
    assert after.get_num_requested(dg.AssetKey("raw_snapshots")) == 0


def test_a_past_partition_of_billed_charges_fetches_that_days_bill(home: Path) -> None:
    """Bills are historical: unlike raw_snapshots, a past day can be materialized."""
    from datetime import date

    from assets.charges import billed_charges
    from assets.resources import VastPipelineResource
    from pipeline.charges import stored_bill, stored_day_log
    from pipeline.storage import Store

    resources = {"vast": VastPipelineResource(home=str(home))}
    result = dg.materialize([billed_charges], partition_key="2026-06-01", resources=resources)
    assert result.success
    store = Store(home)
    log = stored_day_log(store, "default", date(2026, 6, 1))
    rows = stored_bill(store, "default", date(2026, 6, 1)).to_pylist()
    assert log is not None and rows and log["items"] == len(rows)
    assert {r["contract_type"] for r in rows} == {"instance", "volume"}
    assert sum(r["amount"] for r in rows) == pytest.approx(log["total_amount"], abs=1e-6)
    [mat] = result.asset_materializations_for_node("billed_charges")
    assert mat.metadata["contracts"].value == log["contracts"]
    assert mat.metadata["total"].value == pytest.approx(log["total_amount"])
    assert "2026-06-01: new $" in mat.metadata["change"].value
    # A backfill of a range runs in one process (BackfillPolicy.single_run), day by day.
    again = dg.materialize([billed_charges], resources=resources, tags={
        "dagster/asset_partition_range_start": "2026-05-31",
        "dagster/asset_partition_range_end": "2026-06-01"})
    mats = again.asset_materializations_for_node("billed_charges")
    assert sorted(m.partition for m in mats) == ["2026-05-31", "2026-06-01"]
    change = mats[0].metadata["change"].value
    assert "2026-05-31: new $" in change and "2026-06-01: unchanged $" in change
    assert stored_bill(store, "default", date(2026, 6, 1)).num_rows == len(rows)


def test_charges_schedule_refetches_the_last_three_days(defs: dg.Definitions) -> None:
    schedule = defs.resolve_schedule_def("charges_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 6, 5, 2, 30, tzinfo=UTC))
    requests = schedule(context)
    assert [r.partition_key for r in requests] == ["2026-06-03", "2026-06-04", "2026-06-05"]
    assert len({r.run_key for r in requests}) == 3


def test_bill_models_follow_billed_charges(defs: dg.Definitions, tmp_path: Path) -> None:
    """A staging model depends on the collection asset of the datasets it reads."""
    from assets.warehouse import collection_deps
    from pipeline.warehouse import discover_models

    (tmp_path / "billed.sql").write_text(
        "-- billed: one row per item\nselect * from read_parquet('{{ billed_charges_glob }}')"
        " join read_parquet('{{ billed_days_glob }}') using (fetch_id)\n")
    (tmp_path / "both.sql").write_text(
        "-- both\nselect * from read_parquet('{{ billed_days_glob }}'), "
        "read_parquet('{{ snapshots_glob }}')\n")
    models = {m.name: m for m in discover_models(tmp_path)}
    assert collection_deps(models["billed"]) == [dg.AssetKey("billed_charges")]
    assert collection_deps(models["both"]) == [dg.AssetKey("billed_charges"),
                                               dg.AssetKey("instance_snapshots")]
    graph = defs.resolve_asset_graph()
    staging = graph.get(dg.AssetKey(["warehouse", "instance_snapshots"]))
    assert staging.parent_keys == {dg.AssetKey("instance_snapshots")}
