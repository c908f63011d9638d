"""Secrets never reach disk: scrub() unit tests and a search of every stored byte and cell
(inside zstd, Parquet, SQLite and DuckDB files too; see tests/support/stored_text.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from pipeline.core.secrets import env_names, redact, scrub, secret_values
from pipeline.landing.history import land_pending
from pipeline.landing.raw import RawSnapshot, write_snapshot
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import SimulatorServer
from pipeline.storage.store import Store
from tests.support.stored_text import stored_text

KEY = "secrets-test-key-0123456789abcdef"
TOKEN = "53fc448d6644aa7535c6fa5498cdbedc782753e88d81b44090e54dcf1332ed30"


@pytest.mark.parametrize(
    ("extra_env", "names"),
    [
        ([["HF_TOKEN", "hf_secret1"], ["WANDB_API_KEY", "w-secret2"]],
         ["HF_TOKEN", "WANDB_API_KEY"]),
        (["A=secret-a", "B=secret=b"], ["A", "B"]),
        ({"OPENAI_API_KEY": "sk-secret"}, ["OPENAI_API_KEY"]),
        ("-e FOO=secret-foo -e BAR=secret-bar", ["FOO", "BAR"]),
        ([{"name": "X", "value": "secret-x"}], ["X"]),
        ([], []),
        (42, None),
        ([["not a name!", "value-secret"], "no-equals-secret", 7], []),
    ],
)
def test_scrub_keeps_names_only(extra_env: object, names: list[str] | None) -> None:
    record = {"id": 1, "jupyter_token": TOKEN, "extra_env": extra_env}
    clean = scrub(record)
    assert "jupyter_token" not in clean and "extra_env" not in clean
    assert clean["has_jupyter_token"] is True
    assert clean["extra_env_names"] == names
    text = json.dumps(clean)
    for secret in [TOKEN, *secret_values(record)]:
        assert secret not in text
    assert record["jupyter_token"] == TOKEN  # the input is not modified


def test_scrub_is_idempotent_and_marks_missing_token() -> None:
    once = scrub({"id": 2, "jupyter_token": "", "extra_env": [["K", "v"]]})
    assert once["has_jupyter_token"] is False
    assert scrub(once) == once
    assert scrub("not a record") == "not a record"


def test_env_names_rejects_values_in_name_position() -> None:
    assert env_names([["sk-proj-abc123", "NAME"]]) == []


def test_redact_replaces_every_secret() -> None:
    text = f"token {TOKEN} and hf_abc in one line, hf_abc again"
    out = redact(text, [TOKEN, "hf_abc", ""])
    assert TOKEN not in out and "hf_abc" not in out
    assert out.count("[redacted]") == 3


def test_no_secret_anywhere_under_home_after_landing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    fleet = FleetModel(seed=3, size=25, drift_rate=0.05, new_field_rate=0.05, broken_rate=0.02)
    secrets: set[str] = set()
    t0 = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    for i in range(4):
        at = t0 + timedelta(minutes=15 * i)
        records = fleet.records_at(at)
        secrets |= {s for r in records for s in secret_values(r)}
        secrets |= fleet.secret_values_at(at)
        snapshot = RawSnapshot(snapshot_id=f"s{i}", snapshot_at=at, account="acct",
                               records=records)
        write_snapshot(store, snapshot)
        land_pending(store, "acct", snapshot.day)
    assert len(secrets) > 20  # the fleet really carried tokens and env values
    stored = stored_text(tmp_path)
    assert stored.kinds["zstd"] == 4 and stored.kinds["parquet"] == 6
    assert "extra_env_names" in stored.text  # we did look inside the files
    leaked = [s for s in secrets if len(s) >= 6 and s in stored.text]
    assert leaked == []


def test_no_secret_in_any_file_after_dagster_runs_and_a_build(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file under the home: raw zone, history, model Parquet, warehouse.duckdb,
    reports, Dagster's run and event storage (SQLite) and compute logs."""
    from assets.inprocess import collect_in_dagster, dagster_instance
    from assets.reports import cost_report, reliability_report
    from assets.resources import default_resource
    from assets.warehouse import warehouse_models
    from pipeline.startup import load_settings

    fleet = FleetModel(seed=6, size=30)
    moments: list[datetime] = []
    with SimulatorServer({KEY: fleet}, clock=lambda: moments[-1]) as server:
        monkeypatch.setenv("VAST_API_KEY", KEY)
        monkeypatch.setenv("VAST_URL", server.url)
        settings = load_settings()
        for i in range(2):
            moments.append(datetime.now(UTC) - timedelta(minutes=15 * (1 - i)))
            collect_in_dagster(settings)
        with dagster_instance(settings) as instance:
            built = dg.materialize([warehouse_models, cost_report, reliability_report],
                                   resources={"vast": default_resource()}, instance=instance)
        assert built.success
    secrets = set().union(*(fleet.secret_values_at(m) for m in moments))
    assert len(secrets) > 20  # tokens and extra_env values were really served
    stored = stored_text(home)
    assert {"zstd", "parquet", "sqlite", "duckdb", "plain"} <= set(stored.kinds)
    names = {p.name for p in stored.files}
    assert "warehouse.duckdb" in names and "runs.db" in names
    assert any(p.suffix in (".err", ".out") for p in stored.files)  # compute logs
    assert any("models" in p.parts for p in stored.files if p.suffix == ".parquet")
    assert "has_jupyter_token" in stored.text  # we did look inside the files
    leaked = sorted(s for s in [*secrets, KEY] if s in stored.text)
    assert leaked == []
