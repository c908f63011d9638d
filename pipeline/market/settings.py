"""The `[market]` table of the config file: what the market snapshots ask for, how politely,
how often, and the thresholds of the savings advice built from them.

Why a table of its own: the market belongs to no account (one snapshot per run, fetched with
the first account's key), so none of it fits under `[[accounts]]`. Every key is optional;
a value that does not validate is one sentence naming the file and the key (exit 2).

    [market]
    gpu_names = ["RTX 4090"]     # searched besides the models of the last 30 days' history
    allocated_storage_gb = 8     # GB priced into dph_total, the same on every request
    limit = 1000                 # offers asked for per request
    min_interval_seconds = 6     # between two searches (Vast.ai: ~10 a minute per IP)
    cadence_minutes = 60         # market_schedule's rhythm
    lookback_hours = 24          # the savings advice's persistence window ...
    min_seen_share = 0.5         # ... share of its snapshots an offer must be in
    min_monthly_savings = 5      # dollars a month a saving must exceed
    min_savings_pct = 3          # and percent of the current price
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.config import Settings
from pipeline.core.config import _cadence as checked_cadence
from pipeline.core.errors import ConfigError

DEFAULT_ALLOCATED_STORAGE_GB = 8.0  # the search API's documented default
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
DEFAULT_MIN_INTERVAL_SECONDS = 6.0
DEFAULT_CADENCE_MINUTES = 60
DEFAULT_LOOKBACK_HOURS = 24.0
DEFAULT_MIN_SEEN_SHARE = 0.5
DEFAULT_MIN_MONTHLY_SAVINGS = 5.0
DEFAULT_MIN_SAVINGS_PCT = 3.0
HISTORY_DAYS = 30  # the GPU models searched: those rented in this many days before now
# The keys the savings advice (sql/savings_opportunities.sql) reads as placeholders.
ADVICE_KEYS = ("lookback_hours", "min_seen_share", "min_monthly_savings", "min_savings_pct")


@dataclass(frozen=True)
class MarketSettings:
    """The validated `[market]` table (defaults where a key is absent)."""

    gpu_names: tuple[str, ...] = ()
    allocated_storage_gb: float = DEFAULT_ALLOCATED_STORAGE_GB
    limit: int = DEFAULT_LIMIT
    min_interval_seconds: float = DEFAULT_MIN_INTERVAL_SECONDS
    cadence_minutes: int = DEFAULT_CADENCE_MINUTES
    lookback_hours: float = DEFAULT_LOOKBACK_HOURS
    min_seen_share: float = DEFAULT_MIN_SEEN_SHARE
    min_monthly_savings: float = DEFAULT_MIN_MONTHLY_SAVINGS
    min_savings_pct: float = DEFAULT_MIN_SAVINGS_PCT

    def advice_placeholders(self) -> dict[str, str]:
        """The savings advice's thresholds as SQL number literals, under the placeholder
        names the warehouse build renders into the models (`{{ market_lookback_hours }}`
        ...): one definition for the config file and the SQL."""
        return {f"market_{name}": repr(float(getattr(self, name))) for name in ADVICE_KEYS}


def market_settings(settings: Settings) -> MarketSettings:
    """The `[market]` table of the settings' config file (all defaults without one)."""
    if not settings.config_file:
        return MarketSettings()
    try:
        config = tomllib.loads(Path(settings.config_file).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {settings.config_file} cannot be read ({exc}); "
                          "fix it.") from None
    return parse_market(config.get("market"), settings.config_file)


def parse_market(table: object, config_path: str | None) -> MarketSettings:
    """Validate a `[market]` table; each mistake is one sentence naming file and key."""
    if table is None:
        return MarketSettings()
    where = config_path or "the config file"
    if not isinstance(table, Mapping):
        raise ConfigError(f"`market` in {where} must be a [market] table.")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"`market.{unknown[0]}` in {where} is not a [market] setting; use "
                          f"one of {', '.join(sorted(_KEYS))}.")

    def key(name: str) -> str:
        return f"`market.{name}` in {where}"

    defaults = MarketSettings()
    get = table.get
    return MarketSettings(
        gpu_names=_gpu_names(get("gpu_names", []), key("gpu_names")),
        allocated_storage_gb=_number(get("allocated_storage_gb", defaults.allocated_storage_gb),
                                     key("allocated_storage_gb"), "a number of GB > 0",
                                     low=0.0, low_open=True),
        limit=_limit(get("limit", defaults.limit), key("limit")),
        min_interval_seconds=_number(get("min_interval_seconds", defaults.min_interval_seconds),
                                     key("min_interval_seconds"), "a number of seconds >= 0",
                                     low=0.0),
        cadence_minutes=checked_cadence(get("cadence_minutes", defaults.cadence_minutes),
                                        key("cadence_minutes")),
        lookback_hours=_number(get("lookback_hours", defaults.lookback_hours),
                               key("lookback_hours"), "a number of hours > 0",
                               low=0.0, low_open=True),
        min_seen_share=_number(get("min_seen_share", defaults.min_seen_share),
                               key("min_seen_share"), "a share between 0 and 1",
                               low=0.0, high=1.0),
        min_monthly_savings=_number(get("min_monthly_savings", defaults.min_monthly_savings),
                                    key("min_monthly_savings"), "dollars >= 0", low=0.0),
        min_savings_pct=_number(get("min_savings_pct", defaults.min_savings_pct),
                                key("min_savings_pct"), "a percentage from 0 to 100",
                                low=0.0, high=100.0),
    )


_KEYS = frozenset({
    "gpu_names", "allocated_storage_gb", "limit", "min_interval_seconds", "cadence_minutes",
    "lookback_hours", "min_seen_share", "min_monthly_savings", "min_savings_pct",
})


def _gpu_names(value: object, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{source} must be a list of GPU model names such as "
                          f"[\"RTX 4090\"], not {value!r}.")
    return tuple(sorted({v.strip() for v in value}))


def _limit(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ConfigError(f"{source} must be a whole number of offers from 1 to {MAX_LIMIT}, "
                          f"not {value!r}.")
    return value


def _number(value: object, source: str, what: str, *, low: float,
            high: float | None = None, low_open: bool = False) -> float:
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else math.nan
    fits = math.isfinite(number) and (number > low if low_open else number >= low) \
        and (high is None or number <= high)
    if not fits:
        raise ConfigError(f"{source} must be {what}, not {value!r}.")
    return number
