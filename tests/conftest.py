"""Fixtures shared by the whole suite.

Every test gets its own data home, and the environment is cleared of real Vast.ai and AWS
settings so that no test can reach the real services by accident.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_REAL_SETTINGS = ("VAST_API_KEY", "VAST_URL", "VAST_PIPELINE_HOME", "VAST_PIPELINE_CONFIG",
                  "VAST_PIPELINE_CADENCE_MINUTES", "DAGSTER_HOME", "VAST_PIPELINE_WAREHOUSE",
                  "VAST_PIPELINE_CACHE", "VAST_PIPELINE_SINGLE_WRITER", "AWS_ACCESS_KEY_ID",
                  "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                  "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _REAL_SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh VAST_PIPELINE_HOME for the test."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("VAST_PIPELINE_HOME", str(path))
    return path
