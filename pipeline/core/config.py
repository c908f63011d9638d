"""Settings: where data lives, which accounts to collect, how often, and from where.

Read once at start, so a mistake is one clear sentence before any work. Sources, later ones
winning: defaults, an optional TOML config file, the environment.

This module reads the file and the environment into plain data and checks what is its own
(accounts, cadence, pacing); the layers above interpret their own parts of it, each named
here: the home by the storage layer (`pipeline.storage.objectstore.parse_home`, an
`s3://` home's bucket and credentials), the `[alerts]` table by the alerts
(`pipeline.alerts.settings.alert_settings`). `pipeline.startup.load_settings`, what every
entry point calls, runs all of those checks at once.

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

`[[accounts]]` entries are read by `pipeline.core.entries.named_entries`, the one function
for `[[x]]` entries that name a secret by its variable (`[[alerts.receivers]]` too).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pipeline.core.entries import Entry, EntryKind, named_entries
from pipeline.core.errors import ConfigError
from pipeline.core.secrets import redact

DEFAULT_URL = "https://console.vast.ai"
DEFAULT_HOME = "./data"
DEFAULT_CADENCE_MINUTES = 15
# Vast.ai enforces about one call a second per endpoint, measured on arrival; keeping a
# little more than that between our calls avoids 429s caused by network jitter.
DEFAULT_MIN_INTERVAL_SECONDS = 1.1
DEFAULT_CONFIG_FILE = "vast-pipeline.toml"
# Tables of the config file that the layers above read (see the module docstring).
OTHER_TABLES = ("alerts",)

Source = Literal["vast", "simulator"]
ACCOUNTS = EntryKind("accounts", "Account", "key_env", "its key")


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
    # where `home` was read (the variable, or the config file's key), for the storage
    # layer's error sentences
    home_source: str = "VAST_PIPELINE_HOME"
    # the config file's tables the layers above interpret, as written (OTHER_TABLES)
    tables: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # the environment the settings were read from: the layers above read their variables
    # (webhook URLs, object-store credentials) from it; in memory only, never shown
    environment: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

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

    @property
    def config_named(self) -> str:
        """The config file for a sentence: its path, or how to give one when there is none."""
        return self.config_file or "the config file (VAST_PIPELINE_CONFIG)"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the config file and the environment, checking what is core's.

    A value that does not validate is named by where it came from: the variable, or the
    config file's path and key (see `_source`). Entry points call
    `pipeline.startup.load_settings`, which also runs the checks of the layers above."""
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
        home=_normalise_home(home),
        accounts=accounts,
        cadence_minutes=cadence,
        min_interval_seconds=min_interval,
        config_file=config_path,
        home_source=_source(home_variable, config_path, "home"),
        tables={name: config[name] for name in OTHER_TABLES if name in config},
        environment=dict(env),
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
    key = env.get("VAST_API_KEY", "").strip()
    url = env.get("VAST_URL", "").strip()
    if url and not key:
        raise ConfigError(
            "VAST_URL is set but VAST_API_KEY is not: export VAST_API_KEY with your Vast.ai key."
        )
    first = Entry("default", "VAST_API_KEY", key, {"url": url}) if key else None
    accounts = []
    for entry in named_entries(configured, env, ACCOUNTS, config_path, first=first):
        url_source = ("VAST_URL" if entry is first
                      else f"`url` of account {entry.name!r} in {config_path}")
        accounts.append(_account(entry, str(entry.keys.get("url") or DEFAULT_URL), url_source))
    if not accounts:
        accounts.append(Account("default", "embedded simulator", "VAST_API_KEY", "simulator"))
    return tuple(accounts)


def _account(entry: Entry, url: str, url_source: str) -> Account:
    """An account of the real service; `url_source` names where its URL was read."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        # Echoed so the user sees what was read, less a key pasted into the wrong variable
        # and any password in it.
        shown = redact(url, [entry.secret, parsed.password or ""])
        raise ConfigError(f"URL {shown!r} ({url_source}) is not an http(s) URL: fix it.")
    return Account(name=entry.name, url=url.rstrip("/"), key_env=entry.env_name,
                   source="vast", api_key=entry.secret)


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


def _normalise_home(home: str) -> str:
    """Local homes become absolute paths, so views and runs work from any directory; a
    remote home is kept as written (the storage layer checks it, naming `home_source`)."""
    if "://" in home:
        scheme, rest = home.split("://", 1)
        return f"{scheme}://{rest.rstrip('/')}"
    return str(Path(home).expanduser().resolve())
