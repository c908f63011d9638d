"""What every entry point (the CLI, the demo, Dagster) does first: read the settings, have
each layer check its own part of them, and prepare the Dagster instance folder.

Why at the app layer: `pipeline.core.config` reads the config file and the environment into
plain data and imports nothing above core; the home is the storage layer's to interpret
(an `s3://` home's bucket and credentials) and the `[alerts]` table the alerts'. This one
function runs every check, so a mistake in any part is one sentence before any work.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pipeline.alerts.settings import alert_settings
from pipeline.core.config import Settings
from pipeline.core.config import load_settings as read_settings
from pipeline.storage.local import local_dir
from pipeline.storage.objectstore import is_remote, parse_home


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings of `env` (default: this process's environment), checked by every layer."""
    settings = read_settings(env)
    if is_remote(settings.home):
        parse_home(settings.home, settings.environment, source=settings.home_source)
    alert_settings(settings)
    return settings


# Written once into a new DAGSTER_HOME: no telemetry from a data pipeline, and run-level
# retries switched on so the `dagster/max_retries` tag works for scheduled runs.
# One event-log database for all runs, instead of Dagster's default of one SQLite file per
# run, created with its schema at every run: that creation was a third of a `collect`
# (README, "Benchmarks"). Homes created earlier keep their dagster.yaml and their history.
DAGSTER_YAML = """telemetry:
  enabled: false
run_retries:
  enabled: true
event_log_storage:
  module: dagster._core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir:
      env: DAGSTER_HOME
"""


def prepare_dagster_home(settings: Settings, env: Mapping[str, str] | None = None) -> Path:
    """$DAGSTER_HOME, else <local dir of the home>/dagster: created with a dagster.yaml if
    missing.

    Dagster refuses a DAGSTER_HOME that does not exist, so the CLI, the demo and
    `make dagster` all prepare it the same way before pointing Dagster at it.
    """
    env = os.environ if env is None else env
    path = Path(env.get("DAGSTER_HOME") or local_dir(settings.home, env) / "dagster")
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    return path
