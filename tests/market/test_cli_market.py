"""`vast-pipeline market` as a user runs it: its one-sentence errors (exit 2), one snapshot
landed from the embedded simulator (quiet when piped), and rebuild and status covering the
market."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from tests.support.cli import assert_one_sentence_error, run_cli


def test_no_gpu_model_to_search_is_one_sentence_and_exit_2(home: Path) -> None:
    result = run_cli("market", home=home)
    assert result.returncode == 2
    assert_one_sentence_error(result, "No GPU models", "gpu_names", "[market]")
    assert not (home / "raw_market").exists()


def test_market_lands_one_snapshot_and_rebuild_and_status_cover_it(home: Path) -> None:
    (home / "vast-pipeline.toml").write_text(
        '[market]\ngpu_names = ["RTX 4090", "RTX 3090"]\nlimit = 30\n', encoding="utf-8")
    result = run_cli("market", home=home)
    assert result.returncode == 0, result.stderr
    # piped: no progress bar, only the note that the simulator answers
    assert result.stderr.strip().splitlines() == [
        "note: VAST_API_KEY is not set, so this searches the embedded simulator's market; "
        "export VAST_API_KEY to search Vast.ai's."]
    [line] = result.stdout.strip().splitlines()
    [log_file] = (home / "parquet" / "market_snapshots").glob("snapshot_date=*/part-0.parquet")
    [log] = pq.read_table(log_file).to_pylist()
    assert log["offers"] > 0 and log["gpu_names"] == ["RTX 3090", "RTX 4090"]
    assert line.startswith(f"market snapshot {log['snapshot_id']} at ")
    assert f"2 GPU models, {log['requests']} requests" in line
    assert f"{log['offers']} offers landed" in line
    offers = list((home / "parquet" / "market_offers").glob("snapshot_date=*/part-0.parquet"))
    before = offers[0].read_bytes()

    rebuilt = run_cli("rebuild", home=home)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (f"Rebuilt 1 market days from 1 raw market snapshots ({log['offers']} offers, "
            "0 records and 0 values quarantined).") in rebuilt.stdout
    assert offers[0].read_bytes() == before

    status = run_cli("status", home=home)
    assert f"market: newest snapshot {log['snapshot_at']:%Y-%m-%d %H:%M:%S}Z, " \
        f"{log['offers']} offers" in status.stdout


def test_the_models_searched_are_the_historys_plus_the_configured(home: Path) -> None:
    """After a collection, the market snapshot searches the GPU models the instance history
    holds (read here from its Parquet) plus `[market] gpu_names`."""
    import duckdb

    collected = run_cli("collect", home=home)
    assert collected.returncode == 0, collected.stderr
    rented = {r[0] for r in duckdb.execute(
        f"select distinct gpu_name from read_parquet('{home}/parquet/instance_snapshots/*/*/"
        "*.parquet') where gpu_name is not null").fetchall()}
    assert rented and "Tesla V100" not in rented
    (home / "vast-pipeline.toml").write_text('[market]\ngpu_names = ["Tesla V100"]\n',
                                              encoding="utf-8")
    result = run_cli("market", home=home)
    assert result.returncode == 0, result.stderr
    [log_file] = (home / "parquet" / "market_snapshots").glob("snapshot_date=*/part-0.parquet")
    [log] = pq.read_table(log_file).to_pylist()
    assert log["gpu_names"] == sorted(rented | {"Tesla V100"})


def test_a_refused_key_is_one_sentence_and_exit_2(home: Path) -> None:
    from pipeline.sim.fleet import FleetModel
    from pipeline.sim.simulator import SimulatorServer

    (home / "vast-pipeline.toml").write_text('[market]\ngpu_names = ["RTX 4090"]\n',
                                              encoding="utf-8")
    with SimulatorServer(FleetModel(seed=7, size=5)) as server:
        result = run_cli("market", home=home,
                         env={"VAST_API_KEY": "not-a-key-0123", "VAST_URL": server.url})
    assert result.returncode == 2
    assert_one_sentence_error(result, "refused the API key", "VAST_API_KEY")
    assert "not-a-key-0123" not in result.stderr
    assert not list(home.glob("raw_market/**/*.zst"))  # nothing written


def test_market_on_an_object_store_home_lands_and_rebuilds(tmp_path: Path) -> None:
    """On an s3:// home (a real S3-compatible server): the raw file and the three day files
    are objects under `raw_market/` and `parquet/market_*/snapshot_date=D/`, and rebuild
    rewrites them without adding any."""
    import os
    import subprocess
    import sys

    from tests.support.s3_server import BUCKET, running_server

    config = tmp_path / "vast-pipeline.toml"
    config.write_text('[market]\ngpu_names = ["RTX 4090"]\n', encoding="utf-8")
    with running_server() as s3:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VAST_", "DAGSTER_", "AWS_"))}
        env |= s3.env(VAST_PIPELINE_CACHE=str(tmp_path / "cache"),
                      VAST_PIPELINE_CONFIG=str(config))
        prefix = env["VAST_PIPELINE_HOME"].removeprefix(f"s3://{BUCKET}/")

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env,
                                  capture_output=True, text=True, timeout=240, cwd=tmp_path)

        landed = cli("market")
        assert landed.returncode == 0, landed.stderr
        keys = s3.keys(prefix)
        assert sum(k.startswith(f"{prefix}/raw_market/snapshot_date=") for k in keys) == 1
        for name in ("market_offers", "market_quarantine", "market_snapshots"):
            assert sum(k.startswith(f"{prefix}/parquet/{name}/snapshot_date=")
                       and k.endswith("/part-0.parquet") for k in keys) == 1
        rebuilt = cli("rebuild")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "Rebuilt 1 market days from 1 raw market snapshots" in rebuilt.stdout
        assert s3.keys(prefix) == keys
