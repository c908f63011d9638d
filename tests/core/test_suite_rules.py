"""The suite's own rule: a skipped test fails the session (tests/conftest.py).

Each case runs a real pytest in a subprocess, in a scratch directory holding a copy of
this suite's conftest.py, a passing test and the case's test file, with `CI=true` as in
`.ci/run`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).parents[1] / "conftest.py"

CASES = {
    "skip_call": "import pytest\ndef test_a():\n    pytest.skip('chromium is missing')\n",
    "skipif": "import pytest\n@pytest.mark.skipif(True, reason='no duckdb cli')\n"
              "def test_a():\n    assert False\n",
    "module_skip": "import pytest\npytest.importorskip('no_such_module_anywhere')\n"
                   "def test_a():\n    pass\n",
    "xfail": "import pytest\n@pytest.mark.xfail(reason='known bug')\n"
             "def test_a():\n    assert False\n",
}


def _pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_passing.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    (tmp_path / "test_tiny.py").write_text(source)
    env = {**os.environ, "CI": "true"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_skipped_test_fails_the_session_and_is_named(tmp_path: Path, case: str) -> None:
    result = _pytest(tmp_path, CASES[case])
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "skipped tests fail this run" in result.stdout
    assert "NOT RUN test_tiny.py" in result.stdout
    reason = {"skip_call": "chromium is missing", "skipif": "no duckdb cli",
              "module_skip": "no_such_module_anywhere", "xfail": "known bug"}[case]
    assert reason in result.stdout


def test_a_session_without_skips_passes(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "def test_also_ok():\n    assert [1] * 2 == [1, 1]\n")
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "2 passed" in result.stdout and "NOT RUN" not in result.stdout


def test_a_failing_test_keeps_its_own_exit_status(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "import pytest\ndef test_bad():\n    assert False\n"
                               "def test_skip():\n    pytest.skip('x')\n")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED
    assert "1 failed" in result.stdout and "NOT RUN test_tiny.py::test_skip" in result.stdout


REPO = CONFTEST.parents[1]


@pytest.mark.parametrize("args", [(), ("tests/alerts/test_alerts.py", "tests/app/test_cli.py")])
def test_bare_pytest_from_the_repo_root_collects(args: tuple[str, ...]) -> None:
    """`pytest` as a new user types it (the console script, not `python -m pytest`, which
    would put the working directory on sys.path): every test module imports, including
    those importing `tests.alert_receiver` or a sibling helper such as `sql_fixtures`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("pytest")), "--collect-only", "-q",
         "-p", "no:cacheprovider", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "error" not in result.stdout.lower().splitlines()[-1]
    assert "tests/alerts/test_alerts.py::" in result.stdout
