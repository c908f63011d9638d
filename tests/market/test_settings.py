"""The [market] table: defaults, every key read, and one sentence naming file and key for
each mistake (through the real CLI for the exit code)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.config import load_settings
from pipeline.core.errors import ConfigError
from pipeline.market.settings import MarketSettings, market_settings, parse_market
from tests.support.cli import assert_one_sentence_error, run_cli


def _settings_with(home: Path, text: str) -> MarketSettings:
    config = home / "vast-pipeline.toml"
    config.write_text(text, encoding="utf-8")
    return market_settings(load_settings({"VAST_PIPELINE_HOME": str(home),
                                          "VAST_PIPELINE_CONFIG": str(config)}))


def test_defaults_without_a_market_table(home: Path) -> None:
    market = _settings_with(home, 'home = "."\n')
    assert market == MarketSettings()
    assert (market.min_interval_seconds, market.cadence_minutes, market.lookback_hours,
            market.min_seen_share, market.min_monthly_savings, market.min_savings_pct) \
        == (6.0, 60, 24.0, 0.5, 5.0, 3.0)
    assert market.gpu_names == ()


def test_every_key_is_read(home: Path) -> None:
    market = _settings_with(home, """
[market]
gpu_names = ["RTX 4090", "A100 SXM4", "RTX 4090"]
allocated_storage_gb = 20
limit = 250
min_interval_seconds = 7.5
cadence_minutes = 30
lookback_hours = 48
min_seen_share = 0.75
min_monthly_savings = 10
min_savings_pct = 4.5
""")
    assert market == MarketSettings(
        gpu_names=("A100 SXM4", "RTX 4090"), allocated_storage_gb=20.0, limit=250,
        min_interval_seconds=7.5, cadence_minutes=30, lookback_hours=48.0,
        min_seen_share=0.75, min_monthly_savings=10.0, min_savings_pct=4.5)
    assert market.advice_placeholders() == {
        "market_lookback_hours": "48.0", "market_min_seen_share": "0.75",
        "market_min_monthly_savings": "10.0", "market_min_savings_pct": "4.5"}


@pytest.mark.parametrize(("table", "key"), [
    ({"gpu_names": "RTX 4090"}, "market.gpu_names"),
    ({"gpu_names": ["RTX 4090", ""]}, "market.gpu_names"),
    ({"allocated_storage_gb": 0}, "market.allocated_storage_gb"),
    ({"allocated_storage_gb": "8"}, "market.allocated_storage_gb"),
    ({"limit": 0}, "market.limit"),
    ({"limit": 2.5}, "market.limit"),
    ({"limit": True}, "market.limit"),
    ({"min_interval_seconds": -1}, "market.min_interval_seconds"),
    ({"cadence_minutes": 7}, "market.cadence_minutes"),
    ({"lookback_hours": 0}, "market.lookback_hours"),
    ({"min_seen_share": 1.5}, "market.min_seen_share"),
    ({"min_monthly_savings": -5}, "market.min_monthly_savings"),
    ({"min_savings_pct": 101}, "market.min_savings_pct"),
    ({"gpu_name": ["RTX 4090"]}, "market.gpu_name"),
])
def test_each_mistake_names_the_file_and_key(table: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_market(table, "/etc/vp.toml")
    message = str(caught.value)
    assert f"`{key}` in /etc/vp.toml" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_a_bad_value_stops_the_command_with_exit_2(home: Path) -> None:
    (home / "vast-pipeline.toml").write_text("[market]\nlimit = -3\n", encoding="utf-8")
    result = run_cli("market", home=home)
    assert result.returncode == 2
    assert_one_sentence_error(result, "market.limit", "vast-pipeline.toml")
