"""Running the command line as a user does, in its own process, and checking its errors.

Every CLI test goes through `run_cli`: a clean environment (no VAST_/DAGSTER_ variable of
the developer's leaks in), the home in $VAST_PIPELINE_HOME and as the working directory.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest


def run_cli(*args: str, home: Path, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`vast-pipeline ARGS` in a fresh process, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args],
                          env=clean_env(home, env), capture_output=True, text=True,
                          timeout=timeout, cwd=home)


def clean_env(home: Path | str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment of `run_cli`: no VAST_/DAGSTER_ variable of the developer's,
    the home in $VAST_PIPELINE_HOME, then `env`."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("VAST_", "DAGSTER_"))}
    clean.update({"VAST_PIPELINE_HOME": str(home), **(env or {})})
    return clean


def assert_one_sentence_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """The command failed with exactly one `error: ...` line naming `words`, no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]


@contextmanager
def home_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance at $VAST_PIPELINE_HOME/dagster (its dagster.yaml reads
    $DAGSTER_HOME, so that is set while the instance is open)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        with dg.DagsterInstance.get() as instance:
            yield instance


def recorded_runs(home: Path) -> list[dg.DagsterRun]:
    """The runs the home's Dagster instance knows, newest first."""
    with home_instance(home) as instance:
        return list(instance.get_runs())
