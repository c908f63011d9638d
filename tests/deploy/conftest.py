"""The deployment tests share one real Postgres server per test process; each test gets
a database of its own, so every run history starts empty."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer, deploy_dagster_home, start_postgres
from tests.support.s3_server import S3Server, running_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def deploy_env(postgres: PostgresServer, tmp_path: Path) -> dict[str, str]:
    """DAGSTER_HOME with the shipped dagster.yaml, and the DAGSTER_PG_* of a new database."""
    home = deploy_dagster_home(tmp_path / "dagster_home")
    return {"DAGSTER_HOME": str(home),
            **postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The daemon test first: it waits minutes on the daemon's once-a-minute cron, so under
    `pytest -n 3` (xdist hands out tests in this order) one worker starts it at once and
    the other tests run beside it."""
    first = [item for item in items if item.nodeid.startswith("tests/deploy/test_daemon.py")]
    items[:] = first + [item for item in items if item not in first]


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """The moto S3 server of tests/support/s3_server.py, for homes on object storage."""
    with running_server() as server:
        yield server
