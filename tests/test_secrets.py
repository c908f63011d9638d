"""Secrets never reach disk: scrub() unit tests and a search of every stored byte and cell."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.fleet import FleetModel
from pipeline.history import land_snapshot
from pipeline.raw import COMPRESSION, RawSnapshot, write_snapshot
from pipeline.secrets import env_names, redact, scrub, secret_values
from pipeline.storage import Store

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


def _all_stored_text(root: Path, store: Store) -> str:
    """Every file under the home as text: zstd raw decompressed, Parquet cells read."""
    chunks: list[str] = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        chunks.append(path.read_bytes().decode("latin-1"))
        if path.name.endswith(".zst"):
            chunks.append(store.read_bytes(str(path), COMPRESSION).decode())
        if path.name.endswith(".parquet"):
            chunks.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
    return "\n".join(chunks)


def test_no_secret_anywhere_under_home(tmp_path: Path) -> None:
    store = Store(tmp_path)
    fleet = FleetModel(seed=3, size=25, drift_rate=0.05, new_field_rate=0.05, broken_rate=0.02)
    secrets: set[str] = set()
    t0 = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    for i in range(4):
        at = t0 + timedelta(minutes=15 * i)
        records = fleet.records_at(at)
        secrets |= {s for r in records for s in secret_values(r)}
        secrets |= fleet.secret_values_at(at)
        land_snapshot(store, write_snapshot(store, RawSnapshot(
            snapshot_id=f"s{i}", snapshot_at=at, account="acct", records=records)))
    assert len(secrets) > 20  # the fleet really carried tokens and env values
    text = _all_stored_text(tmp_path, store)
    assert "extra_env_names" in text  # we did look inside the files
    leaked = [s for s in secrets if len(s) >= 6 and s in text]
    assert leaked == []
