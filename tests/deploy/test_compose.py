"""deploy/docker-compose.yml and deploy/Dockerfile say what the tests run (Docker itself is
not available here, so the files are read, not run)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.postgres import DEPLOY, ENV_NAMES

REPO = DEPLOY.parent
DAGSTER_SERVICES = ("code", "webserver", "daemon")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _env_names(node: Any) -> set[str]:
    """Every `{env: NAME}` in a Dagster config document."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(_env_names(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_names(v) for v in node))
    return set()


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_the_compose_services_get_exactly_what_dagster_yaml_reads() -> None:
    instance = _yaml(DEPLOY / "dagster.yaml")
    compose = _yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    read = _env_names(instance)
    assert read == {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USER",
                    "DAGSTER_PG_PASSWORD"}
    # The tests' server hands out the same names (tests/support/postgres.py).
    assert set(ENV_NAMES) == read
    for name in DAGSTER_SERVICES:
        env = services[name]["environment"]
        assert read <= set(env), name
        assert env["DAGSTER_PG_HOST"] in services  # a service of this file
        assert env["DAGSTER_PG_PASSWORD"].startswith("${DAGSTER_PG_PASSWORD:?")
    postgres = services["postgres"]["environment"]
    pg = services["code"]["environment"]
    assert postgres["POSTGRES_DB"] == pg["DAGSTER_PG_DB"]
    assert postgres["POSTGRES_USER"] == pg["DAGSTER_PG_USER"]
    assert postgres["POSTGRES_PASSWORD"] == pg["DAGSTER_PG_PASSWORD"]
    assert pg["DAGSTER_PG_PORT"] == "5432"
    storage = instance["storage"]["postgres"]["postgres_db"]
    assert storage["scheme"] == "postgresql+psycopg2"
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["run_coordinator"]["config"]["max_concurrent_runs"] >= 1


def test_no_password_is_written_in_the_deploy_files() -> None:
    files = [path for path in sorted(DEPLOY.rglob("*")) if path.is_file()]
    assert files  # the compose file, the Dockerfile, the instance, rules, dashboard
    for path in files:
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            match = re.match(r"\s*(\w*PASSWORD\w*|password)\s*:\s*(.*)$", line)
            if match:
                value = match.group(2)
                assert value.startswith(("{env:", "${")), f"{path.name}: {line}"


def test_the_workspace_points_at_the_code_location_of_the_same_definitions() -> None:
    compose = _yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    [grpc] = [entry["grpc_server"] for entry in _yaml(DEPLOY / "workspace.yaml")["load_from"]]
    [local] = [entry["python_module"] for entry in _yaml(REPO / "workspace.yaml")["load_from"]]
    code = services[grpc["host"]]["command"]
    assert code[:3] == ["dagster", "code-server", "start"]
    assert int(_option(code, "-p")) == grpc["port"]
    assert _option(code, "-m") == local["module_name"]
    assert _option(code, "--location-name") == grpc["location_name"] == local["location_name"]
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    copied = dict(re.findall(r"^COPY (deploy/\S+) (\S+)$", dockerfile, re.MULTILINE))
    home = re.search(r"DAGSTER_HOME=(\S+)", dockerfile).group(1)
    assert copied["deploy/dagster.yaml"] == "${DAGSTER_HOME}/dagster.yaml"
    for name in ("webserver", "daemon"):
        assert _option(services[name]["command"], "-w") == copied["deploy/workspace.yaml"]
    assert home.startswith("/")
    assert "-c constraints.txt '.[s3,postgres]'" in dockerfile  # the pins the tests ran
