"""Benchmark: `vast-pipeline collect` of a 60-instance fleet, start to finish, as users run it.

Each run is a fresh `vast-pipeline collect` process (imports, Dagster instance, the run
recorded in $DAGSTER_HOME, one snapshot landed) against a simulator on 127.0.0.1 that
answers without rate limiting, so what is measured is our own cost, not the API's
politeness delay. Beside the median wall time it measures, in fresh processes too, the
import of the collection code alone and `vast-pipeline --help`, so the README can say
where the seconds go.

Usage: `vast-pipeline bench collect [--instances 60] [--runs 5]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

GOAL_S = 3.0


def _timed_process(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:])} failed:\n{done.stderr[-2000:]}")
    return seconds


def run(instances: int, runs: int) -> dict[str, list[float]]:
    """Wall seconds per run of: collect, importing the collection code, --help."""
    from pipeline.fleet import FleetModel
    from pipeline.simulator import DEMO_API_KEY, SimulatorServer

    cli = str(Path(sys.executable).with_name("vast-pipeline"))
    with tempfile.TemporaryDirectory() as tmp, SimulatorServer(
            FleetModel(seed=7, size=instances), min_interval=0.0, keep_log=False) as sim:
        config = Path(tmp) / "vast-pipeline.toml"
        config.write_text("min_interval_seconds = 0.001\n", encoding="utf-8")
        env = {**os.environ, "VAST_URL": sim.url, "VAST_API_KEY": DEMO_API_KEY,
               "VAST_PIPELINE_HOME": str(Path(tmp) / "home"),
               "VAST_PIPELINE_CONFIG": str(config)}
        env.pop("DAGSTER_HOME", None)
        out: dict[str, list[float]] = {"collect": [], "imports": [], "help": []}
        _timed_process([cli, "collect"], env)  # first run creates the Dagster home: not timed
        for _ in range(runs):  # interleaved, so the machine's load hits all three alike
            out["collect"].append(_timed_process([cli, "collect"], env))
            out["imports"].append(_timed_process(
                [sys.executable, "-c", "import assets.inprocess"], env))
            out["help"].append(_timed_process([cli, "--help"], env))
    return out


def render(res: dict[str, list[float]], instances: int) -> str:
    def span(values: list[float]) -> str:
        return f"median {statistics.median(values):.2f} s (range {min(values):.2f}-" \
               f"{max(values):.2f} s over {len(values)} runs)"

    collect = statistics.median(res["collect"])
    verdict = "ok" if collect <= GOAL_S else "MISSED"
    return "\n".join([
        f"collect benchmark: `vast-pipeline collect`, {instances}-instance fleet, "
        "simulator without rate limiting",
        f"  collect (wall, fresh process)   {span(res['collect'])}   target <= {GOAL_S:.0f} s   "
        f"{verdict}",
        f"  of which importing the code     {span(res['imports'])}",
        f"  vast-pipeline --help            {span(res['help'])}",
        f"  machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `vast-pipeline bench collect`."""
    parser = argparse.ArgumentParser(prog="vast-pipeline bench collect",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    args = parser.parse_args(argv)
    if args.instances < 1 or args.runs < 1:
        parser.error("need at least 1 instance and 1 run")
    print(render(run(args.instances, args.runs), args.instances))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
