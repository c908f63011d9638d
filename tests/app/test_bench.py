"""The warehouse benchmark's report, on a tiny generated history: every figure issue 11
asks for is printed, the ratio is really full build / reference pass, and the incremental
build's per-model times are there. Speed itself is never asserted here. The benchmarks run
as `python -m bench ...` from the checkout (they are not in the wheel)."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench import ROOT, with_root_on_path
from bench import warehouse as bench_warehouse


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=240, env=with_root_on_path())


def test_warehouse_benchmark_prints_its_ratio_and_where_the_time_goes(tmp_path: Path) -> None:
    res = bench_warehouse.run(12, 3, tmp_path, repeat=1, seed=7, memory_limit="1GB",
                              say=lambda _msg: None)
    assert res["ratios"] == [pytest.approx(res["full_s"] / res["reference_s"])]
    assert set(res["incremental_model_s"]) == set(res["model_s"])
    assert "instance_intervals" in res["incremental_model_s"]
    out = bench_warehouse.render(res)
    flat = res["incremental_s"] / res["day_one_incremental_s"]
    assert f"incremental, these 3 days / day one: {flat:.2f}x   target <= 1.25x" in out
    ratio = statistics.median(res["ratios"])
    assert f"full build / reference pass: {ratio:.1f}x   target <= 3.0x" in out
    for line in ("where the full build's time goes: ",
                 "where the incremental build's time goes: "):
        shares = out.split(line, 1)[1].splitlines()[0]
        assert "setup and swap" in shares and "other models" in shares
    # the command itself, from the checkout, on the cached data: the same lines reach stdout
    done = _bench("warehouse", "--instances", "12", "--days", "3", "--dir", str(tmp_path),
                  cwd=ROOT)
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    assert "12 instances x 3 days" in printed
    assert re.search(r"full build / reference pass: [\d.]+x", printed)
    assert "where the incremental build's time goes: " in printed


def test_python_m_bench_names_the_benchmarks_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    listing = _bench("--help", cwd=tmp_path)
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()[2:]] == [
        "history", "warehouse", "collect", "market-landing"]
    unknown = _bench("market", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("error: No benchmark named 'market'; pick one of "
                                      "history, warehouse, collect, market-landing.")


def test_market_landing_benchmark_prints_its_medians_and_ratio(tmp_path: Path) -> None:
    """`python -m bench market-landing` on a small snapshot: the medians of both cases and
    their ratio to the baseline measured in the same run are printed (speed not asserted)."""
    done = _bench("market-landing", "--offers", "200", "--limit", "50", "--runs", "1",
                  "--dir", str(tmp_path), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "market snapshot: 200 offers in" in out
    base = float(re.search(r"baseline \(.*\): median ([\d.]+) s", out).group(1))
    for case in ("into an empty day", "into a day of 23 snapshots"):
        found = re.search(rf"landing {case}: median ([\d.]+) s .* ([\d.]+)x the baseline", out)
        assert found, out
        # both figures are printed rounded: compare the ratio to theirs within that rounding
        assert float(found.group(2)) == pytest.approx(float(found.group(1)) / base, rel=0.05)
