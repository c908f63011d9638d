"""Remove secrets from API records before anything is written anywhere, and from any text
before it is shown: one scrubber for records, one redactor and one marker for text.

An instance record carries two secrets: `jupyter_token` (opens the instance's Jupyter
server) and the values of `extra_env` (users pass API keys and passwords that way).
`scrub` keeps what is useful for analysis and safe to store: whether a token was present
(`has_jupyter_token`) and the environment variable *names* (`extra_env_names`).
`scrub` is idempotent, so it is safe to apply at every boundary (raw writer, flatten).

`redact` is the one function that takes secrets out of text (a server's echo of the API
key, a webhook URL in a log line, a key or credential quoted by a failed run, a secret in a
config value echoed by an error), always leaving the one marker `REDACTED`, so a reader
(and a test) recognises a removed secret wherever it was removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# An environment variable name; anything else in a "name" position might be a value.
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")
# "NAME=value" inside a string form of extra_env (e.g. "-e A=1 -e B=2").
_ENV_ASSIGN_RE = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_.]{0,127})=")
REDACTED = "[redacted]"  # what stands where a secret was, in every text the pipeline shows


def scrub(record: Any) -> Any:
    """`record` without `jupyter_token` and `extra_env` values.

    Returns a new dict when something was removed, else `record` itself (non-dicts too):
    most records the pipeline sees have already been scrubbed once.
    """
    if not isinstance(record, dict):
        return record
    if "jupyter_token" not in record and "extra_env" not in record:
        return record
    clean = {k: v for k, v in record.items() if k not in ("jupyter_token", "extra_env")}
    if "jupyter_token" in record:
        clean["has_jupyter_token"] = _present(record["jupyter_token"])
    if "extra_env" in record:
        clean["extra_env_names"] = env_names(record["extra_env"])
    return clean


def _present(token: Any) -> bool:
    return token is not None and token != "" and token != []


def env_names(extra_env: Any) -> list[str] | None:
    """Variable names from any known shape of `extra_env`; None when the shape is unknown.

    Shapes seen: list of [name, value] pairs, list of "NAME=value" strings, a dict, a string
    of "-e NAME=value" options. Only strings that look like variable names are kept, so a
    value can never slip through as a "name".
    """
    if extra_env is None:
        return None
    if isinstance(extra_env, dict):
        return _valid(extra_env.keys())
    if isinstance(extra_env, str):
        return _valid(_ENV_ASSIGN_RE.findall(extra_env))
    if isinstance(extra_env, list):
        return _valid(_item_name(item) for item in extra_env)
    return None


def _item_name(item: Any) -> Any:
    if isinstance(item, list | tuple) and item:
        return item[0]
    if isinstance(item, str):
        return item.split("=", 1)[0] if "=" in item else None
    if isinstance(item, dict):
        return item.get("name", item.get("key"))
    return None


def _valid(names: Iterable[Any]) -> list[str]:
    return [n for n in names if isinstance(n, str) and _ENV_NAME_RE.match(n)]


def secret_values(record: Any) -> list[str]:
    """The secret strings a raw (unscrubbed) record carries, for `redact` and tests."""
    if not isinstance(record, dict):
        return []
    found: list[str] = []
    token = record.get("jupyter_token")
    if isinstance(token, str) and token:
        found.append(token)
    env = record.get("extra_env")
    if isinstance(env, dict):
        found += [str(v) for v in env.values() if v not in (None, "")]
    elif isinstance(env, list):
        for item in env:
            if isinstance(item, list | tuple) and len(item) > 1:
                found += [str(v) for v in item[1:] if v not in (None, "")]
            elif isinstance(item, str) and "=" in item:
                found.append(item.split("=", 1)[1])
            elif isinstance(item, dict) and item.get("value") not in (None, ""):
                found.append(str(item["value"]))
    elif isinstance(env, str) and env:
        found.append(env)
    return [s for s in found if s]


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each non-empty secret replaced by `REDACTED`
    (the longest first, so a secret that contains another goes whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
