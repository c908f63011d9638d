"""The Dagster side of the market: `landed_market_snapshots` materializes one snapshot in
process (against the embedded simulator) with its metadata, and `market_schedule` runs at
the `[market] cadence_minutes`, STOPPED until switched on."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_market_schedule_is_hourly_and_stopped_by_default(home: Path) -> None:
    from assets.definitions import defs

    schedule = defs.resolve_schedule_def("market_schedule")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "market_job"
    request = schedule(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 6, 5, 13, 0, tzinfo=UTC)))
    assert request.run_key == "market-20260605T1300"
    job = defs.resolve_job_def("market_job")
    assert {n.name for n in job.graph.nodes} == {"landed_market_snapshots"}


def test_market_schedule_follows_the_configured_cadence(home: Path) -> None:
    config = home / "vast-pipeline.toml"
    config.write_text("[market]\ncadence_minutes = 30\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", "from assets.definitions import defs; "
         "print(defs.resolve_schedule_def('market_schedule').cron_schedule)"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
        env={"PATH": "/usr/bin:/bin", "VAST_PIPELINE_HOME": str(home),
             "VAST_PIPELINE_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "*/30 * * * *"


def test_the_asset_lands_a_market_snapshot_with_its_metadata(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assets.market import landed_market_snapshots
    from assets.resources import VastPipelineResource

    config = home / "vast-pipeline.toml"
    config.write_text('[market]\ngpu_names = ["RTX 4090", "RTX 3090"]\nlimit = 40\n',
                      encoding="utf-8")
    monkeypatch.setenv("VAST_PIPELINE_CONFIG", str(config))
    done = dg.materialize([landed_market_snapshots],
                          resources={"vast": VastPipelineResource(home=str(home))})
    assert done.success
    meta = done.asset_materializations_for_node("landed_market_snapshots")[0].metadata
    logs = list((home / "parquet" / "market_snapshots").glob("*/*.parquet"))
    [log] = pq.read_table(logs[0]).to_pylist()
    assert meta["offers"].value == log["offers"] > 0
    assert meta["requests"].value == log["requests"] >= 4
    assert meta["incomplete"].value is log["incomplete"]
    assert meta["gpu_names"].value == "RTX 3090, RTX 4090" == ", ".join(log["gpu_names"])
    assert meta["snapshot_id"].value == log["snapshot_id"]
