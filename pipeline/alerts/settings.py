"""The `[alerts]` table of the config file: rule thresholds, switches and receivers.

The core settings keep the table as written; it is interpreted here (`alert_settings`),
once at start by `pipeline.startup.load_settings`, so a bad threshold is one sentence,
naming the file, before any collection. Webhook URLs are secrets: the config file names the
environment variable holding each URL, the URL is read from the environment into memory
only (kept out of repr), and everything else (state, logs, the `alerts` table) refers to a
receiver by its name. `[[alerts.receivers]]` entries are read by the one function for
named entries with a secret in a variable (`pipeline.core.entries`).

    [alerts]
    instance_down_minutes = 30
    collection_failing_runs = 2
    idle_gpu_hours = 6
    stopped_days = 3
    credit_runway_days = 3
    spend_spike_ratio = 2
    bill_difference_pct = 10
    disabled = ["spend_spike"]        # rules switched off
    delivery_attempts = 4             # POSTs per message within one run
    retry_backoff_seconds = 1.0       # 1 s, 2 s, 4 s ... between them
    timeout_seconds = 10
    [[alerts.receivers]]
    name = "oncall"
    url_env = "ONCALL_WEBHOOK_URL"    # the URL itself never goes in a file
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from pipeline.core.config import Settings
from pipeline.core.entries import Entry, EntryKind, named_entries
from pipeline.core.errors import ConfigError

DEFAULT_WEBHOOK_ENV = "VAST_PIPELINE_ALERT_WEBHOOK"
HEARTBEAT_ENV = "VAST_PIPELINE_HEARTBEAT_URL"
DEFAULT_RECEIVER = "default"

# Rules evaluated after a collection (from the Parquet history) and after a warehouse
# build (from the models); `run_failed` is posted by the Dagster run-failure sensor.
COLLECTION_RULES = ("instance_down", "collection_failing")
BUILD_RULES = ("idle_gpu", "stopped_storage", "credit_runway", "spend_spike",
               "bill_difference")
SENSOR_RULES = ("run_failed",)
RULES = COLLECTION_RULES + BUILD_RULES + SENSOR_RULES

# key -> (default, bound, kind): "int" is a whole number >= bound, "above" a number > bound,
# "from" a number >= bound.
THRESHOLDS: dict[str, tuple[float, float, str]] = {
    "instance_down_minutes": (30, 0, "above"),
    "collection_failing_runs": (2, 1, "int"),
    "idle_gpu_hours": (6, 0, "above"),
    "stopped_days": (3, 0, "above"),
    "credit_runway_days": (3, 0, "above"),
    "spend_spike_ratio": (2, 1, "above"),
    "bill_difference_pct": (10, 0, "above"),
}
DELIVERY_KEYS: dict[str, tuple[float, float, str]] = {
    "delivery_attempts": (4, 1, "int"),
    "retry_backoff_seconds": (1.0, 0, "from"),
    "timeout_seconds": (10.0, 0, "above"),
}
RECEIVERS = EntryKind("alerts.receivers", "Alert receiver", "url_env", "its webhook URL")


@dataclass(frozen=True)
class Receiver:
    """A webhook receiver, named; the URL stays in memory (never in a repr, file or log)."""

    name: str
    url_env: str
    url: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class AlertSettings:
    instance_down_minutes: float = 30
    collection_failing_runs: int = 2
    idle_gpu_hours: float = 6
    stopped_days: float = 3
    credit_runway_days: float = 3
    spend_spike_ratio: float = 2
    bill_difference_pct: float = 10
    disabled: frozenset[str] = frozenset()
    delivery_attempts: int = 4
    retry_backoff_seconds: float = 1.0
    timeout_seconds: float = 10.0
    receivers: tuple[Receiver, ...] = ()
    heartbeat_url: str = field(default="", repr=False, compare=False)

    def enabled(self, rule: str) -> bool:
        return rule not in self.disabled

    def receiver(self, name: str) -> Receiver | None:
        return next((r for r in self.receivers if r.name == name), None)

    def secrets(self) -> list[str]:
        """Every URL held, so text can be checked and redacted before it is shown."""
        return [u for u in [*(r.url for r in self.receivers), self.heartbeat_url] if u]


def alert_settings(settings: Settings) -> AlertSettings:
    """The `[alerts]` table of `settings`' config file, interpreted here (the core settings
    keep it as written), with the webhook variables of the environment the settings were
    read from. `pipeline.startup.load_settings` calls it once at start, so a mistake in it
    is one sentence before any work."""
    return parse_alerts(settings.tables.get("alerts"), settings.environment,
                        settings.config_file)


def parse_alerts(table: object, env: Mapping[str, str],
                 config_path: str | None = None) -> AlertSettings:
    """The validated `[alerts]` table (empty when absent) plus the webhook variables; an
    error names the config file (`config_path`)."""
    where = config_path or "the config file"
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise ConfigError(f"`alerts` in {where} must be a table: write [alerts].")
    known = {*THRESHOLDS, *DELIVERY_KEYS, "disabled", "receivers"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"Unknown key {unknown[0]!r} in [alerts] of {where}; known keys: "
                          f"{', '.join(sorted(known))}.")
    values: dict[str, object] = {
        key: _number(table.get(key, default), key, bound, kind, where)
        for key, (default, bound, kind) in {**THRESHOLDS, **DELIVERY_KEYS}.items()}
    return AlertSettings(**values, disabled=_disabled(table.get("disabled", []), where),
                         receivers=_receivers(table.get("receivers", []), env, config_path),
                         heartbeat_url=_url(env.get(HEARTBEAT_ENV, ""), HEARTBEAT_ENV))


def _number(value: object, key: str, bound: float, kind: str, where: str) -> float | int:
    """A finite number within its bound (see THRESHOLDS), else one sentence."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = {"int": float(value).is_integer() and value >= bound, "above": value > bound,
              "from": value >= bound}[kind]
    if not ok:
        wanted = {"int": f"a whole number >= {bound:g}", "above": f"a number > {bound:g}",
                  "from": f"a number >= {bound:g}"}[kind]
        raise ConfigError(f"[alerts] {key} must be {wanted}, not {value!r}; fix it in {where}.")
    return int(value) if kind == "int" else float(value)


def _disabled(value: object, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[alerts] disabled in {where} must be a list of rule names, e.g. "
                          '["idle_gpu"].')
    unknown = [v for v in value if v not in RULES]
    if unknown:
        raise ConfigError(f"[alerts] disabled in {where} names unknown rule {unknown[0]!r}; "
                          f"rules are {', '.join(RULES)}.")
    return frozenset(value)


def _receivers(configured: object, env: Mapping[str, str],
               config_path: str | None) -> tuple[Receiver, ...]:
    default_url = env.get(DEFAULT_WEBHOOK_ENV, "").strip()
    first = Entry(DEFAULT_RECEIVER, DEFAULT_WEBHOOK_ENV, default_url) if default_url else None
    entries = named_entries(configured, env, RECEIVERS, config_path, first=first)
    return tuple(Receiver(e.name, e.env_name, _url(e.secret, e.env_name)) for e in entries)


def _url(url: str, variable: str) -> str:
    """`url` if it is http(s); the message names the variable, never the (secret) URL."""
    url = url.strip()
    if not url:
        return ""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"${variable} does not hold an http(s) URL; set it to the webhook "
                          "URL your chat or paging service gave you.")
    return url
