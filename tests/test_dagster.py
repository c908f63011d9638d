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
