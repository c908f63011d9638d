"""The `[alerts]` table of the config file: rule thresholds, switches and receivers.

Validated once at start with the rest of the settings, so a bad threshold is one sentence
before any collection. Webhook URLs are secrets: the config file names the environment
variable holding each URL, the URL is read from the environment into memory only (kept
out of repr), and everything else (state, logs, the `alerts` table) refers to a receiver
by its name.

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
_RECEIVER_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


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


def parse_alerts(table: object, env: Mapping[str, str]) -> AlertSettings:
    """The validated `[alerts]` table (empty when absent) plus the webhook variables."""
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise ConfigError("`alerts` in the config file must be a table: write [alerts].")
    known = {*THRESHOLDS, *DELIVERY_KEYS, "disabled", "receivers"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"Unknown key {unknown[0]!r} in [alerts]; known keys: "
                          f"{', '.join(sorted(known))}.")
    values: dict[str, object] = {
        key: _number(table.get(key, default), key, bound, kind)
        for key, (default, bound, kind) in {**THRESHOLDS, **DELIVERY_KEYS}.items()}
    return AlertSettings(**values, disabled=_disabled(table.get("disabled", [])),
                         receivers=_receivers(table.get("receivers", []), env),
                         heartbeat_url=_url(env.get(HEARTBEAT_ENV, ""), HEARTBEAT_ENV))


def _number(value: object, key: str, bound: float, kind: str) -> float | int:
    """A finite number within its bound (see THRESHOLDS), else one sentence."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = {"int": float(value).is_integer() and value >= bound, "above": value > bound,
              "from": value >= bound}[kind]
    if not ok:
        wanted = {"int": f"a whole number >= {bound:g}", "above": f"a number > {bound:g}",
                  "from": f"a number >= {bound:g}"}[kind]
        raise ConfigError(f"[alerts] {key} must be {wanted}, not {value!r}; fix the config "
                          "file.")
    return int(value) if kind == "int" else float(value)


def _disabled(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError('[alerts] disabled must be a list of rule names, e.g. ["idle_gpu"].')
    unknown = [v for v in value if v not in RULES]
    if unknown:
        raise ConfigError(f"[alerts] disabled names unknown rule {unknown[0]!r}; rules are "
                          f"{', '.join(RULES)}.")
    return frozenset(value)


def _receivers(configured: object, env: Mapping[str, str]) -> tuple[Receiver, ...]:
    if not isinstance(configured, list):
        raise ConfigError("[alerts] receivers must be a list of [[alerts.receivers]] tables.")
    receivers = []
    default_url = env.get(DEFAULT_WEBHOOK_ENV, "").strip()
    if default_url:
        receivers.append(Receiver(DEFAULT_RECEIVER, DEFAULT_WEBHOOK_ENV,
                                  _url(default_url, DEFAULT_WEBHOOK_ENV)))
    receivers += [_receiver(entry, env) for entry in configured]
    names = [r.name for r in receivers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"Alert receiver names must be unique; repeated: {', '.join(repeated)}"
                          f" (`{DEFAULT_RECEIVER}` is the one of ${DEFAULT_WEBHOOK_ENV}).")
    return tuple(receivers)


def _receiver(entry: object, env: Mapping[str, str]) -> Receiver:
    if not isinstance(entry, dict) or "name" not in entry or "url_env" not in entry:
        raise ConfigError("Each [[alerts.receivers]] entry needs `name` and `url_env` (the "
                          "variable holding its webhook URL).")
    name, url_env = str(entry["name"]), str(entry["url_env"])
    if not name or len(name) > 64 or not set(name) <= _RECEIVER_NAME_CHARS:
        raise ConfigError(f"Alert receiver name {name!r} is not usable: use letters, digits, "
                          "'_', '.' or '-'.")
    url = env.get(url_env, "").strip()
    if not url:
        raise ConfigError(f"Alert receiver {name!r} reads its webhook URL from ${url_env}, "
                          f"which is not set: export {url_env}.")
    return Receiver(name, url_env, _url(url, url_env))


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
