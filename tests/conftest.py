"""Fixtures and rules shared by the whole suite.

Every test gets its own data home, and the environment is cleared of real Vast.ai
and AWS settings so that no test can reach the real services by accident.

A skipped test is a test that did not run, so a session with any skipped (or xfailed)
test exits non-zero and lists them with their reasons: a missing prerequisite (chromium,
a dev dependency) must be installed, never silently passed over. `.ci/run` installs
everything the suite needs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_REAL_SETTINGS = ("VAST_API_KEY", "VAST_URL", "VAST_PIPELINE_HOME", "VAST_PIPELINE_CONFIG",
                  "VAST_PIPELINE_CADENCE_MINUTES", "DAGSTER_HOME", "VAST_PIPELINE_WAREHOUSE",
                  "VAST_PIPELINE_CACHE", "VAST_PIPELINE_SINGLE_WRITER", "VAST_PIPELINE_NOW",
                  "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
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


# --------------------------------------------------------------------------- no skips


class SkipGuard:
    """Records every test that did not run; turns a green session red and lists them."""

    def __init__(self) -> None:
        self.not_run: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped:
            self.not_run.append((report.nodeid, _reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:  # a module-level pytest.skip or importorskip
            self.not_run.append((report.nodeid, _reason(report)))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.not_run and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.not_run:
            return
        terminalreporter.section("skipped tests fail this run", sep="!", red=True, bold=True)
        for nodeid, reason in self.not_run:
            terminalreporter.line(f"NOT RUN {nodeid}: {reason}", red=True)
        terminalreporter.line(f"{len(self.not_run)} test(s) did not run: install what they "
                              "need (see .ci/run) instead of skipping them.", red=True, bold=True)


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    if getattr(report, "wasxfail", None) is not None:
        return f"xfail: {report.wasxfail}"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: why")
        return str(longrepr[2])
    return str(longrepr)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipGuard(), "vast_pipeline_skip_guard")
