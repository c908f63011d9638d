"""Settings: where data lives, which accounts to collect, how often, and from where.

Read once at start and validated, so a mistake is one clear sentence before any work.
Sources, later ones winning: defaults, an optional TOML config file, the environment.

Environment (names match the official `vastai` client where one exists):
- `VAST_API_KEY`: key of the account named `default`. Unset (and no accounts in the config
  file): the embedded simulator is the source, so the demo runs with no account at all.
- `VAST_URL`: base URL of that account (default https://console.vast.ai).
- `VAST_PIPELINE_HOME`: where all data lives (default ./data): a folder, or
  `s3://bucket/prefix` on S3-compatible storage (configured by the AWS_* variables, see
  `pipeline.storage.objectstore`).
- `VAST_PIPELINE_WAREHOUSE`: the DuckDB warehouse file (default `<home>/warehouse.duckdb`,
  or under the local cache when the home is remote: a DuckDB file is always local).
- `VAST_PIPELINE_CACHE`: machine-local folder of a remote home (default
  `$XDG_CACHE_HOME/vast-pipeline/<bucket>-<hash>`): warehouse, reports, Dagster instance.
- `VAST_PIPELINE_CONFIG`: path of the TOML config file (default ./vast-pipeline.toml if present).
- `VAST_PIPELINE_CADENCE_MINUTES`: minutes between scheduled snapshots (default 15).

Config file (all keys optional):
    home = "/var/lib/vast-pipeline"
    cadence_minutes = 15
    min_interval_seconds = 1.1
    [[accounts]]
    name = "research"          # letters, digits, '_', '.' and '-'; names the partitions
    key_env = "VAST_KEY_RESEARCH"   # the key itself never goes in a file
    url = "https://console.vast.ai"
    [alerts]                   # thresholds and webhook receivers: see pipeline.alerts.settings
    instance_down_minutes = 30
"""

from __future__ import annotations

import hashlib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pipeline.alerts.settings import AlertSettings, parse_alerts
from pipeline.core.errors import ConfigError
from pipeline.storage.objectstore import is_remote, parse_home
from pipeline.storage.store import check_account

DEFAULT_URL = "https://console.vast.ai"
DEFAULT_HOME = "./data"
DEFAULT_CADENCE_MINUTES = 15
# Vast.ai enforces about one call a second per endpoint, measured on arrival; keeping a
# little more than that between our calls avoids 429s caused by network jitter.
DEFAULT_MIN_INTERVAL_SECONDS = 1.1
DEFAULT_CONFIG_FILE = "vast-pipeline.toml"

Source = Literal["vast", "simulator"]


@dataclass(frozen=True)
class Account:
    """One Vast.ai account to collect. The key is kept out of repr and never written."""

    name: str
    url: str
    key_env: str
    source: Source
    api_key: str = field(default="", repr=False)

    @property
    def is_simulated(self) -> bool:
        return self.source == "simulator"


@dataclass(frozen=True)
class Settings:
    home: str
    accounts: tuple[Account, ...]
    cadence_minutes: int = DEFAULT_CADENCE_MINUTES
    min_interval_seconds: float = DEFAULT_MIN_INTERVAL_SECONDS
    config_file: str | None = None
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def account(self, name: str | None) -> Account:
        """The named account (or the only/`default` one when name is None)."""
        if name is None:
            return self.accounts[0]
        for account in self.accounts:
            if account.name == name:
                return account
        known = ", ".join(a.name for a in self.accounts)
        raise ConfigError(f"No account named {name!r} is configured (known: {known}).")

    @property
    def uses_simulator(self) -> bool:
        return any(a.is_simulated for a in self.accounts)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate settings from the config file and the environment.

    A value that does not validate is named by where it came from: the variable, or the
    config file's path and key (see `_source`)."""
    env = os.environ if env is None else env
    config_path, config = _read_config_file(env)
    home_variable = "VAST_PIPELINE_HOME" if env.get("VAST_PIPELINE_HOME") else None
    home = env.get("VAST_PIPELINE_HOME") or str(config.get("home") or DEFAULT_HOME)
    cadence_variable = "VAST_PIPELINE_CADENCE_MINUTES"
    cadence = _cadence(env.get(cadence_variable, config.get("cadence_minutes")),
                       _source(cadence_variable if cadence_variable in env else None,
                               config_path, "cadence_minutes"))
    min_interval = _positive_float(config.get("min_interval_seconds", DEFAULT_MIN_INTERVAL_SECONDS),
                                   _source(None, config_path, "min_interval_seconds"))
    accounts = _accounts(env, config.get("accounts", []), config_path)
    return Settings(
        home=_normalise_home(home, _source(home_variable, config_path, "home"), env),
        accounts=accounts,
        cadence_minutes=cadence,
        min_interval_seconds=min_interval,
        config_file=config_path,
        alerts=parse_alerts(config.get("alerts"), env),
    )


def _source(variable: str | None, config_path: str | None, key: str) -> str:
    """Where a setting was read, for its error sentence: the environment variable it came
    from, else its key in the config file."""
    return variable or f"`{key}` in {config_path}"


def _read_config_file(env: Mapping[str, str]) -> tuple[str | None, dict]:
    explicit = env.get("VAST_PIPELINE_CONFIG")
    path = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)
    if not path.exists():
        if explicit:
            raise ConfigError(f"VAST_PIPELINE_CONFIG points at {path}, which does not exist.")
        return None, {}
    try:
        return str(path), tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} is not valid TOML ({exc}); fix it.") from None


def _accounts(env: Mapping[str, str], configured: object,
              config_path: str | None) -> tuple[Account, ...]:
    if not isinstance(configured, list):
        raise ConfigError(f"`accounts` in {config_path} must be a list of [[accounts]] tables.")
    accounts = []
    key = env.get("VAST_API_KEY", "").strip()
    url = env.get("VAST_URL", "").strip()
    if key:
        accounts.append(_account("default", "VAST_API_KEY", url or DEFAULT_URL, key, "VAST_URL"))
    elif url:
        raise ConfigError(
            "VAST_URL is set but VAST_API_KEY is not: export VAST_API_KEY with your Vast.ai key."
        )
    accounts += [_configured_account(entry, env, config_path) for entry in configured]
    if not accounts:
        accounts.append(Account("default", "embedded simulator", "VAST_API_KEY", "simulator"))
    names = [a.name for a in accounts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"Account names must be unique; repeated in {config_path}: "
                          f"{', '.join(duplicates)} (VAST_API_KEY's account is `default`).")
    return tuple(accounts)


def _configured_account(entry: object, env: Mapping[str, str],
                        config_path: str | None) -> Account:
    if not isinstance(entry, dict) or "name" not in entry or "key_env" not in entry:
        raise ConfigError(f"Each [[accounts]] entry in {config_path} needs `name` and "
                          "`key_env` (the variable holding its key).")
    name, key_env = str(entry["name"]), str(entry["key_env"])
    where = f"`name` of an [[accounts]] entry in {config_path}"
    try:
        check_account(name)  # the same rule as the partition folders it names
    except ConfigError as exc:
        raise ConfigError(f"{str(exc).removesuffix('.')} (the {where}).") from None
    key = env.get(key_env, "").strip()
    if not key:
        raise ConfigError(f"Account {name!r} reads its key from ${key_env}, which is not set: "
                          f"export {key_env}.")
    return _account(name, key_env, str(entry.get("url") or DEFAULT_URL), key,
                    f"`url` of account {name!r} in {config_path}")


def _account(name: str, key_env: str, url: str, key: str, url_source: str) -> Account:
    """An account of the real service; `url_source` names where its URL was read."""
    check_account(name)  # the same rule as the partition folders it names
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"URL {url!r} ({url_source}) is not an http(s) URL: fix it.")
    return Account(name=name, url=url.rstrip("/"), key_env=key_env, source="vast", api_key=key)


def _cadence(value: object, source: str) -> int:
    """Minutes between snapshots; only cadences a cron schedule can keep exactly.

    The warehouse caps intervals at twice the cadence, so a schedule that fired at another
    rhythm would silently cut (or pad) observed time. `source` names where `value` was read.
    """
    if value is None:
        return DEFAULT_CADENCE_MINUTES
    try:
        minutes = int(str(value))
    except ValueError:
        minutes = 0
    fits_hour = 1 <= minutes <= 60 and 60 % minutes == 0
    fits_day = minutes % 60 == 0 and 0 < minutes <= 1440 and 1440 % minutes == 0
    if not (fits_hour or fits_day):
        raise ConfigError(
            f"Cadence {value!r} ({source}) is not usable: use minutes that divide an hour (1, "
            "2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60) or whole hours that divide a day (120, 180, "
            "240, 360, 480, 720, 1440).")
    return minutes


def cadence_cron(minutes: int) -> str:
    """The cron expression of a cadence accepted by `load_settings`."""
    if minutes < 60:
        return f"*/{minutes} * * * *"
    if minutes == 60:
        return "0 * * * *"
    return f"0 */{minutes // 60} * * *"


def _positive_float(value: object, source: str) -> float:
    try:
        number = float(str(value))
    except ValueError:
        number = -1.0
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{source} must be a finite number of seconds >= 0, not {value!r}.")
    return number


def _normalise_home(home: str, source: str, env: Mapping[str, str]) -> str:
    """Local homes become absolute paths, so views and runs work from any directory; a
    remote home is checked now (s3:// only, no credentials in it), its errors naming
    `source`."""
    if "://" in home:
        if is_remote(home):
            parse_home(home, env, source=source)
        return home.rstrip("/")
    return str(Path(home).expanduser().resolve())


def local_dir(home: str, env: Mapping[str, str] | None = None) -> Path:
    """Where this machine keeps the files of `home` that cannot live on an object store
    (the warehouse, reports, the Dagster instance): the home itself when it is local."""
    env = os.environ if env is None else env
    if not is_remote(home):
        return Path(home.removeprefix("file://")).expanduser().resolve()
    if env.get("VAST_PIPELINE_CACHE"):
        return Path(env["VAST_PIPELINE_CACHE"]).expanduser().resolve()
    config = parse_home(home, env)
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vast-pipeline"
    digest = hashlib.sha1(config.uri.encode()).hexdigest()[:8]
    return (base / f"{config.bucket}-{digest}").resolve()


def warehouse_file(home: str, env: Mapping[str, str] | None = None) -> Path:
    """The DuckDB warehouse of `home`: $VAST_PIPELINE_WAREHOUSE, else in `local_dir`."""
    env = os.environ if env is None else env
    explicit = env.get("VAST_PIPELINE_WAREHOUSE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return local_dir(home, env) / "warehouse.duckdb"


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
