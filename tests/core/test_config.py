"""Settings: defaults, config file, environment precedence, and one-sentence errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import startup
from pipeline.core.config import DEFAULT_URL, load_settings
from pipeline.core.errors import ConfigError
from pipeline.core.secrets import REDACTED


def test_no_key_means_embedded_simulator(tmp_path: Path) -> None:
    settings = load_settings({"VAST_PIPELINE_HOME": str(tmp_path)})
    assert [a.name for a in settings.accounts] == ["default"]
    assert settings.accounts[0].is_simulated
    assert settings.home == str(tmp_path.resolve())


def test_key_selects_real_service_and_stays_out_of_repr() -> None:
    settings = load_settings({"VAST_API_KEY": "k-123456789-secret"})
    account = settings.account(None)
    assert account.source == "vast" and account.url == DEFAULT_URL
    assert "k-123456789-secret" not in repr(settings)


def test_url_without_key_is_one_clear_sentence() -> None:
    with pytest.raises(ConfigError, match="VAST_API_KEY is not"):
        load_settings({"VAST_URL": "http://127.0.0.1:9"})


def test_config_file_accounts_and_env_precedence(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('home = "/nowhere"\ncadence_minutes = 30\n'
                      '[[accounts]]\nname = "research"\nkey_env = "KEY_R"\n'
                      'url = "http://127.0.0.1:8000"\n')
    env = {"VAST_PIPELINE_CONFIG": str(config), "KEY_R": "r-key",
           "VAST_PIPELINE_HOME": str(tmp_path), "VAST_PIPELINE_CADENCE_MINUTES": "5"}
    settings = load_settings(env)
    assert settings.home == str(tmp_path.resolve())  # environment wins over the file
    assert settings.cadence_minutes == 5
    assert settings.account("research").url == "http://127.0.0.1:8000"
    with pytest.raises(ConfigError, match="No account named 'nope'"):
        settings.account("nope")


def test_configured_account_with_missing_key_names_the_variable(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[accounts]]\nname = "ops"\nkey_env = "KEY_OPS"\n')
    with pytest.raises(ConfigError, match=r"\$KEY_OPS, which is not set"):
        load_settings({"VAST_PIPELINE_CONFIG": str(config)})


@pytest.mark.parametrize("value", ["0", "abc", "100000", "7", "45", "90", "1500"])
def test_cadence_a_schedule_cannot_keep_is_rejected(value: str) -> None:
    with pytest.raises(ConfigError, match="Cadence"):
        load_settings({"VAST_PIPELINE_CADENCE_MINUTES": value})


@pytest.mark.parametrize(("value", "cron"), [("15", "*/15 * * * *"), ("60", "0 * * * *"),
                                             ("120", "0 */2 * * *"), ("1440", "0 */24 * * *")])
def test_cadence_and_its_cron(value: str, cron: str) -> None:
    from pipeline.core.config import cadence_cron

    settings = load_settings({"VAST_PIPELINE_CADENCE_MINUTES": value})
    assert cadence_cron(settings.cadence_minutes) == cron


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_min_interval_must_be_finite(tmp_path: Path, value: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"min_interval_seconds = {value}\n")
    with pytest.raises(ConfigError, match="min_interval_seconds"):
        load_settings({"VAST_PIPELINE_CONFIG": str(config)})


def test_account_names_follow_the_partition_rule(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[accounts]]\nname = "../etc"\nkey_env = "K"\n')
    with pytest.raises(ConfigError, match=r"Account name '\.\./etc'"):
        load_settings({"VAST_PIPELINE_CONFIG": str(config), "K": "k"})


def test_bad_toml_and_bad_url(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("home = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"VAST_PIPELINE_CONFIG": str(bad)})
    with pytest.raises(ConfigError, match="not an http"):
        load_settings({"VAST_API_KEY": "k", "VAST_URL": "console.vast.ai"})


def test_a_bad_value_is_named_by_where_it_was_read(tmp_path: Path) -> None:
    """The variable, or the config file's path and key: the user can go straight to it."""
    config = tmp_path / "c.toml"
    env = {"VAST_PIPELINE_CONFIG": str(config), "K": "k-0123456789"}
    cases = [
        ('[[accounts]]\nname = "ops"\nkey_env = "K"\nurl = "console"\n',
         f"URL 'console' (`url` of account 'ops' in {config}) is not an http(s) URL"),
        ('[[accounts]]\nname = "a b"\nkey_env = "K"\n',
         f"(the `name` of an [[accounts]] entry in {config})"),
        ('accounts = "ops"\n', f"`accounts` in {config} must be a list"),
        ("[[accounts]]\nname = 'x'\n", f"Each [[accounts]] entry in {config} needs"),
        ("cadence_minutes = 7\n", f"(`cadence_minutes` in {config})"),
    ]
    for text, named in cases:
        config.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_settings(env)
        assert named in str(err.value)
    # the environment wins over the file, and is named when it is the one that is wrong
    with pytest.raises(ConfigError, match=r"\(VAST_PIPELINE_CADENCE_MINUTES\)"):
        load_settings({**env, "VAST_PIPELINE_CADENCE_MINUTES": "7"})
    # the home is the storage layer's to interpret, at start (pipeline.startup), and is
    # named by where it was read all the same
    config.write_text('home = "/srv/vast"\n')
    with pytest.raises(ConfigError, match=r"^VAST_PIPELINE_HOME needs a bucket"):
        startup.load_settings({**env, "VAST_PIPELINE_HOME": "s3://"})
    config.write_text('home = "s3://"\n')
    with pytest.raises(ConfigError, match=rf"^`home` in {config} needs a bucket"):
        startup.load_settings(env)


@pytest.mark.parametrize("url", ["{key}", "ftp://user:{key}@host", "vast.ai/?key={key}"])
def test_a_url_that_is_refused_is_echoed_without_the_key_or_a_password(url: str) -> None:
    """The URL is quoted in the error so the user can see what was read, but a key pasted
    into the wrong variable (or a password in it) is shown as the one redaction marker."""
    key = "k-0123456789-secret"
    with pytest.raises(ConfigError, match="is not an http") as caught:
        load_settings({"VAST_API_KEY": key, "VAST_URL": url.format(key=key)})
    assert key not in str(caught.value)
    assert REDACTED in str(caught.value)
