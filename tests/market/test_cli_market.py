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
