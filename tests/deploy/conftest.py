"""The deployment tests share one real Postgres server per test process; each test gets
a database of its own, so every run history starts empty."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer, deploy_dagster_home, start_postgres


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
