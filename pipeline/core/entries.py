"""`[[x]]` entries of the config file that name a secret by its variable: `[[accounts]]`
(`key_env`) and `[[alerts.receivers]]` (`url_env`), read by one function.

Why one function: both kinds need the same things, and the same sentences when they are
wrong: a name that can be a folder and a key (`NAME_RE`, the rule the storage layer's
`account=<name>` partitions follow too), the secret read from the environment into memory
only (never from the file), no name twice, and every error naming the config file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.errors import ConfigError

# A name that becomes a folder (`account=<name>`) or a key: safe on every filesystem and in
# hive partition paths.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: object, label: str) -> str:
    """`name` if it can name a folder and a key (`NAME_RE`), else one sentence."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(
            f"{label} name {name!r} is not usable: use letters, digits, '_', '.' or '-'."
        )
    return name


@dataclass(frozen=True)
class EntryKind:
    """A kind of `[[x]]` entry: its table, what it is called in a sentence, the key naming
    the variable that holds its secret, and what that secret is."""

    table: str  # "accounts", "alerts.receivers"
    label: str  # "Account", "Alert receiver"
    env_key: str  # "key_env", "url_env"
    holds: str  # "its key", "its webhook URL"


@dataclass(frozen=True)
class Entry:
    """One `[[x]]` entry: its unique name, the variable holding its secret, the secret (in
    memory only) and its other keys as written."""

    name: str
    env_name: str
    secret: str = field(repr=False)
    keys: Mapping[str, Any] = field(default_factory=dict)


def named_entries(configured: object, env: Mapping[str, str], kind: EntryKind,
                  config_path: str | None, *, first: Entry | None = None) -> tuple[Entry, ...]:
    """The `[[kind.table]]` entries (after `first`, the one an environment variable gives,
    if any): each with a usable name and its secret set in the environment, no name twice.
    Every error is one sentence naming the config file."""
    where = config_path or "the config file"
    if not isinstance(configured, list):
        raise ConfigError(f"`{kind.table}` in {where} must be a list of [[{kind.table}]] "
                          "tables.")
    entries = [first] if first is not None else []
    entries += [_entry(item, env, kind, where) for item in configured]
    names = [e.name for e in entries]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        note = f" (`{first.name}` is the one of ${first.env_name})" if first is not None else ""
        raise ConfigError(f"{kind.label} names must be unique; repeated in {where}: "
                          f"{', '.join(repeated)}{note}.")
    return tuple(entries)


def _entry(item: object, env: Mapping[str, str], kind: EntryKind, where: str) -> Entry:
    if not isinstance(item, dict) or "name" not in item or kind.env_key not in item:
        raise ConfigError(f"Each [[{kind.table}]] entry in {where} needs `name` and "
                          f"`{kind.env_key}` (the variable holding {kind.holds}).")
    name, env_name = str(item["name"]), str(item[kind.env_key])
    try:
        check_name(name, kind.label)
    except ConfigError as exc:
        raise ConfigError(f"{str(exc).removesuffix('.')} (the `name` of an [[{kind.table}]] "
                          f"entry in {where}).") from None
    secret = env.get(env_name, "").strip()
    if not secret:
        raise ConfigError(f"{kind.label} {name!r} reads {kind.holds} from ${env_name}, which "
                          f"is not set: export {env_name}.")
    return Entry(name, env_name, secret,
                 {k: v for k, v in item.items() if k not in ("name", kind.env_key)})
