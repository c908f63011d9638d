"""What several commands share: the run's day, the settings read with the CLI's
one `--account` rule, and the check that an account's history is there."""

from __future__ import annotations

import sys
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports the heavy modules lazily, for a quick start
    from pipeline.core.config import Settings

HISTORY_DATASETS = ("raw", "raw_charges", "snapshots", "billed_days")


def _today() -> date:
    """The UTC day of the run's one clock (`pipeline.core.clock`), read once per command."""
    from pipeline.core import clock
    return clock.today()


def _checked_settings(account: str | None, simulator_note: str) -> Settings:
    """Settings checked before any work: a mistyped account name or an unreachable or
    refused object store fails here, in one sentence; says when the simulator is used."""
    from pipeline.startup import load_settings
    from pipeline.storage.store import Store

    settings = load_settings()
    Store(settings.home)
    _check_account(settings, account, fetches=True)
    if settings.uses_simulator:
        print(f"note: VAST_API_KEY is not set, so this {simulator_note}.", file=sys.stderr)
    return settings


def _read_settings(account: str | None) -> Settings:
    """Settings of a command that reads what is stored (rebuild, report, export), with its
    --account checked before any work."""
    from pipeline.startup import load_settings

    settings = load_settings()
    _check_account(settings, account, fetches=False)
    return settings


# What holds an account's history: the raw zones (the source of truth) and the logs landed
# from them; an account in any of them can be rebuilt, reported and exported.
HISTORY_DATASETS = ("raw", "raw_charges", "snapshots", "billed_days")


def _check_account(settings: Settings, account: str | None, *, fetches: bool) -> None:
    """The one rule for --account, in every command that takes it: a name that is neither
    configured nor (for commands reading what is stored) in the history is the user's
    mistake, one sentence naming the known accounts, exit 2. A command that fetches from
    the API (collect, charges) needs the account configured, with its key."""
    from pipeline.core.errors import ConfigError
    from pipeline.storage.store import Store

    configured = [a.name for a in settings.accounts]
    if account is None or account in configured:
        return
    store = Store(settings.home)
    stored = {name for dataset in HISTORY_DATASETS for name in store.accounts(dataset)}
    if account in stored and not fetches:
        return
    if account in stored:
        raise ConfigError(f"Account {account!r} has history in {settings.home} but is not "
                          "configured, so it cannot be fetched: add it to [[accounts]] in "
                          f"the config file (configured: {', '.join(configured)}).")
    known = configured if fetches else sorted({*configured, *stored})
    where = "configured" if fetches else "configured or in the history"
    raise ConfigError(f"No account named {account!r} is {where} (known: {', '.join(known)}).")
