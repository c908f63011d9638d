"""What an endpoint answers: a reply (status, body, content type), the API's error body,
and reading the JSON-encoded query parameters the official client sends.

Shared by every endpoint so each error has the real service's shape
(`{"success": false, "error": ..., "msg": ...}`) and JSON replies carry
`Content-Type: application/json` exactly (the official client gives up otherwise).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

JSON = "application/json"


@dataclass
class Reply:
    """One answer; `truncate` and `delay` are set by injected faults."""

    status: int
    body: bytes
    content_type: str = JSON
    truncate: bool = False
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(body: Any, status: int = 200) -> Reply:
    """A JSON reply of `body`."""
    return Reply(status, orjson.dumps(body))


class ApiError(Exception):
    """An error answer: status plus the JSON body the real service sends."""

    def __init__(self, status: int, error: str | None, msg: str) -> None:
        super().__init__(msg)
        body: dict[str, Any] = {"success": False}
        if error is not None:
            body["error"] = error
        body["msg"] = msg
        self.reply = json_reply(body, status)


def bad_request(msg: str, error: str = "invalid_request") -> ApiError:
    """The 400 the service sends for a malformed request."""
    return ApiError(400, error, msg)


def server_error() -> Reply:
    """The 500 answered when an endpoint fails (a bug, or an input nobody foresaw)."""
    return ApiError(500, "server_error", "Internal error.").reply


def single(query: dict[str, list[str]], name: str) -> str | None:
    """The last value of query parameter `name`, or None."""
    values = query.get(name)
    return values[-1] if values else None


def json_param(query: dict[str, list[str]], name: str, default: Any) -> Any:
    """A JSON-encoded query parameter (the official client's format); bare strings pass."""
    raw = single(query, name)
    if raw is None or raw == "":
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def int_value(value: Any, name: str = "limit") -> int:
    """`value` as an int, or the 400 saying `name` must be an integer."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise bad_request(f"{name} must be an integer.") from None


def limit_param(query: dict[str, list[str]], default: int) -> int:
    """The `limit` query parameter as an int (400 otherwise)."""
    return int_value(json_param(query, "limit", default))


def is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite(value: float) -> bool:
    """A finite number (an int too large for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
