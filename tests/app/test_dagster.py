"""Dagster: the code location loads, and real in-process runs materialize with their checks."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import FaultConfig, SimulatorServer

REPO = Path(__file__).resolve().parents[2]


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
    assert {"raw_snapshots", "landed_instance_snapshots", "warehouse/instance_intervals",
            "warehouse/estimated_cost_daily", "cost_report", "reliability_report"} <= keys
    estimated_cost_daily = dg.AssetKey(["warehouse", "estimated_cost_daily"])
    upstream = dg.AssetSelection.assets(estimated_cost_daily).upstream().resolve(graph)
    assert {dg.AssetKey(["warehouse", "instance_intervals"]),
            dg.AssetKey("landed_instance_snapshots"),
            dg.AssetKey("raw_snapshots")} <= upstream
    downstream = dg.AssetSelection.assets(estimated_cost_daily).downstream().resolve(graph)
    assert dg.AssetKey("cost_report") in downstream
    schedule = defs.resolve_schedule_def("collect_schedule")
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_every_asset_has_a_name_of_its_own(defs: dg.Definitions) -> None:
    """The UI names an asset by its key's last part: a Python asset and a SQL model that
    shared one (instance_snapshots, billed_charges) showed twice under one name. Python
    assets that land the history are `landed_*`, SQL models `warehouse/<table>`."""
    from pipeline.warehouse.models import discover_models

    keys = defs.resolve_asset_graph().get_all_asset_keys()
    names = [key.path[-1] for key in keys]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    models = {model.name for model in discover_models()}
    assert {key.path[-1] for key in keys if key.path[0] == "warehouse"} == models
    python = {key.to_user_string() for key in keys if key.path[0] != "warehouse"}
    assert {"landed_instance_snapshots", "landed_billed_charges"} <= python
    assert not python & models


def test_past_partition_cannot_be_fetched(defs: dg.Definitions, home: Path) -> None:
    from assets.collection import raw_snapshots
    from assets.resources import VastPipelineResource

    result = dg.materialize([raw_snapshots], partition_key="2025-06-01", raise_on_error=False,
                            resources={"vast": VastPipelineResource(home=str(home))})
    assert not result.success
    [failure] = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert "only tells the present" in description
    assert "landed_instance_snapshots" in description


def test_collect_build_and_report_in_process(defs: dg.Definitions, home: Path) -> None:
    """A scheduled run's work: collect today, derive Parquet, build models, write reports."""
    from assets.collection import landed_instance_snapshots, raw_snapshots
    from assets.resources import VastPipelineResource

    resources = {"vast": VastPipelineResource(home=str(home))}
    today = datetime.now(UTC).date().isoformat()
    for _ in range(2):  # two snapshots make the first interval
        collected = dg.materialize([raw_snapshots, landed_instance_snapshots], partition_key=today,
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
    meta = collected.asset_materializations_for_node("landed_instance_snapshots")[0].metadata
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
    although most daily partitions of landed_instance_snapshots were never collected."""
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert quiet.total_requested == 0
    today = datetime.now(UTC).date().isoformat()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="landed_instance_snapshots", partition=today))
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
    for key in (["warehouse", "instance_intervals"], ["warehouse", "estimated_cost_daily"],
                ["cost_report"], ["reliability_report"]):
        assert after.get_num_requested(dg.AssetKey(key)) == 1, key
    assert after.get_num_requested(dg.AssetKey("raw_snapshots")) == 0


def test_reports_are_skipped_not_failed_until_there_is_data(home: Path) -> None:
    """A fresh deployment's first run: one snapshot makes no interval, so no cost yet."""
    from assets.collection import landed_instance_snapshots, raw_snapshots
    from assets.reports import cost_report, cost_report_month_to_date, reliability_report
    from assets.resources import VastPipelineResource
    from assets.warehouse import warehouse_models

    reports = [cost_report, cost_report_month_to_date, reliability_report]
    resources = {"vast": VastPipelineResource(home=str(home))}
    today = datetime.now(UTC).date().isoformat()
    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize([raw_snapshots, landed_instance_snapshots], partition_key=today,
                           resources=resources, instance=instance)
    assert first.success
    run = dg.materialize([warehouse_models, *reports], resources=resources, instance=instance)
    assert run.success
    materialized = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
    assert "warehouse/estimated_cost_daily" in materialized
    assert not materialized & {"cost_report", "cost_report_month_to_date", "reliability_report"}
    logs = [e.message for e in instance.all_logs(run.run_id)]
    assert any("cost_last_7_days skipped, not materialized: The warehouse has no data yet"
               in message for message in logs)
    assert not (home / "reports").exists()

    dg.materialize([raw_snapshots, landed_instance_snapshots], partition_key=today,
                   resources=resources, instance=instance)
    second = dg.materialize([warehouse_models, *reports], resources=resources,
                            instance=instance)
    materialized = {e.asset_key.to_user_string()
                    for e in second.get_asset_materialization_events()}
    assert {"cost_report", "cost_report_month_to_date", "reliability_report"} <= materialized
    assert list((home / "reports" / "cost_last_7_days").glob("*.html"))


RETRY_KEY = "retry-test-key-0123456789"
# `materialize` always runs with step retries enabled, so it would sleep through the
# policy's delay (up to a minute). The job below is the definitions' `collect_job` on the
# in-process executor with retries disabled: the step's failure then says whether the
# retry policy asked to run it again (RetryRequestedFromPolicy) or the step refused
# retries (a Failure with allow_retries=False).
NO_WAITING = {"execution": {"config": {"in_process": {"retries": {"disabled": {}}}}}}


def collect_job() -> dg.JobDefinition:
    """The code location's collect_job (module level, so `dg.reconstructable` finds it)."""
    from assets.definitions import defs

    return defs.resolve_job_def("collect_job")


def _run_collect_job(today: str, monkeypatch: pytest.MonkeyPatch) -> dg.ExecutionResult:
    from pipeline.startup import load_settings, prepare_dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(prepare_dagster_home(load_settings())))
    with dg.DagsterInstance.get() as instance:
        return dg.execute_job(dg.reconstructable(collect_job), instance=instance,
                              run_config=NO_WAITING, tags={"dagster/partition": today},
                              raise_on_error=False)


def _point_at(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> None:
    """Collect from `url` with RETRY_KEY, pacing calls 10 ms apart (a fast test)."""
    config = tmp_path / "vast-pipeline.toml"
    config.write_text("min_interval_seconds = 0.01\n", encoding="utf-8")
    monkeypatch.setenv("VAST_PIPELINE_CONFIG", str(config))
    monkeypatch.setenv("VAST_API_KEY", RETRY_KEY)
    monkeypatch.setenv("VAST_URL", url)


def _event_types(events) -> list[str]:
    return [e.event_type_value for e in events if e.is_step_event]


@pytest.mark.parametrize(("server_key", "faults", "retried"), [
    (RETRY_KEY, FaultConfig(rate_5xx=1.0), True),      # 503s past the client's budget
    ("another-key-0123456789", FaultConfig(), False),  # the key is refused
])
def test_transient_trouble_is_retried_and_a_refused_key_is_not(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_key: str,
        faults: FaultConfig, retried: bool) -> None:
    today = datetime.now(UTC).date().isoformat()
    with SimulatorServer({server_key: FleetModel(seed=2, size=5)}, faults=faults) as server:
        _point_at(monkeypatch, tmp_path, server.url)
        result = _run_collect_job(today, monkeypatch)
        requests = len(server.request_log)
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert (error.cls_name == "RetryRequestedFromPolicy") is retried
    assert error.message.startswith("RetryRequested") is retried
    description = failure.step_failure_data.user_failure_data.description
    if retried:
        assert requests >= 6  # the client spent its own budget first
        assert description.startswith("Gave up on /api/v1/instances/ after 6 attempts")
    else:
        assert error.cls_name == "Failure" and "VAST_API_KEY" in description
    assert RETRY_KEY not in str([e.message for e in result.all_events])


def test_cli_collection_runs_are_never_retried(home: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone waits at the terminal: transient trouble fails the run at once, recorded."""
    from assets.collection import CLI_RUN_TAG
    from assets.inprocess import collect_in_dagster
    from pipeline.core.errors import PipelineError
    from pipeline.startup import load_settings

    with SimulatorServer({RETRY_KEY: FleetModel(seed=2, size=5)},
                         faults=FaultConfig(rate_5xx=1.0)) as server:
        _point_at(monkeypatch, tmp_path, server.url)
        with pytest.raises(PipelineError, match="Gave up on /api/v1/instances/ after 6"):
            collect_in_dagster(load_settings())
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))  # dagster.yaml reads it
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.FAILURE and run.tags[CLI_RUN_TAG] == "true"
        types = _event_types(e.dagster_event for e in instance.all_logs(run.run_id)
                             if e.dagster_event)
    assert "STEP_FAILURE" in types and "STEP_UP_FOR_RETRY" not in types


def test_a_past_partition_of_the_bill_fetches_that_days_bill(home: Path) -> None:
    """Bills are historical: unlike raw_snapshots, a past day can be materialized."""
    from datetime import date

    from assets.charges import landed_billed_charges
    from assets.resources import VastPipelineResource
    from pipeline.billing import stored_bill, stored_day_log
    from pipeline.storage.store import Store

    resources = {"vast": VastPipelineResource(home=str(home))}
    result = dg.materialize([landed_billed_charges], partition_key="2026-06-01",
                            resources=resources)
    assert result.success
    store = Store(home)
    log = stored_day_log(store, "default", date(2026, 6, 1))
    rows = stored_bill(store, "default", date(2026, 6, 1)).to_pylist()
    assert log is not None and rows and log["items"] == len(rows)
    assert {r["contract_type"] for r in rows} == {"instance", "volume"}
    assert sum(r["amount"] for r in rows) == pytest.approx(log["total_amount"], abs=1e-6)
    [mat] = result.asset_materializations_for_node("landed_billed_charges")
    assert mat.metadata["contracts"].value == log["contracts"]
    assert mat.metadata["total"].value == pytest.approx(log["total_amount"])
    assert "2026-06-01: new $" in mat.metadata["change"].value
    # A backfill of a range runs in one process (BackfillPolicy.single_run), day by day.
    again = dg.materialize([landed_billed_charges], resources=resources, tags={
        "dagster/asset_partition_range_start": "2026-05-31",
        "dagster/asset_partition_range_end": "2026-06-01"})
    mats = again.asset_materializations_for_node("landed_billed_charges")
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


def test_bill_models_follow_the_landed_bill(defs: dg.Definitions, tmp_path: Path) -> None:
    """A staging model depends on the collection asset of the datasets it reads."""
    from assets.warehouse import collection_deps
    from pipeline.warehouse.models import discover_models

    (tmp_path / "billed.sql").write_text(
        "-- billed: one row per item\nselect * from read_parquet('{{ billed_charges_glob }}')"
        " join read_parquet('{{ billed_days_glob }}') using (fetch_id)\n")
    (tmp_path / "both.sql").write_text(
        "-- both\nselect * from read_parquet('{{ billed_days_glob }}'), "
        "read_parquet('{{ snapshots_glob }}')\n")
    models = {m.name: m for m in discover_models(tmp_path)}
    assert collection_deps(models["billed"]) == [dg.AssetKey("landed_billed_charges")]
    assert collection_deps(models["both"]) == [dg.AssetKey("landed_billed_charges"),
                                               dg.AssetKey("landed_instance_snapshots")]
    graph = defs.resolve_asset_graph()
    staging = graph.get(dg.AssetKey(["warehouse", "instance_snapshots"]))
    assert staging.parent_keys == {dg.AssetKey("landed_instance_snapshots")}


def test_schema_drift_is_a_warning_in_dagster_and_at_the_cli(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """New fields from the API are a warning, as docs/operations.md says: a WARN-severity check
    (the UI shows it as a warning, not a failure) and `warning` in `collect`'s lines."""
    from assets.inprocess import collect_in_dagster
    from pipeline.startup import load_settings

    fleet = FleetModel(seed=3, size=20, new_field_rate=1.0)
    with SimulatorServer({RETRY_KEY: fleet}) as server:
        _point_at(monkeypatch, tmp_path, server.url)
        lines = collect_in_dagster(load_settings())
    [drift] = [line for line in lines if line.startswith("check no_unexpected_schema_drift:")]
    assert drift.startswith("check no_unexpected_schema_drift: warning - the API sent "), drift
    assert not [line for line in lines if "FAILED" in line], lines
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        [evaluation] = [r.dagster_event.asset_check_evaluation_data
                        for r in instance.all_logs(run.run_id)
                        if r.dagster_event is not None and r.dagster_event.event_type
                        == dg.DagsterEventType.ASSET_CHECK_EVALUATION
                        and r.dagster_event.asset_check_evaluation_data.check_name
                        == "no_unexpected_schema_drift"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN


def test_the_drift_check_stays_a_warning_on_a_day_with_nothing_landed(home: Path) -> None:
    from pipeline.storage.store import Store
    from pipeline.warehouse.quality import run_history_checks

    outcomes = {o.name: o for o in run_history_checks(Store(home), cadence_minutes=15,
                                                      day=datetime.now(UTC).date())}
    assert not any(o.passed for o in outcomes.values())
    assert outcomes["no_unexpected_schema_drift"].severity == "WARN"
    assert outcomes["unique_instance_snapshot"].severity == "ERROR"
