"""Lossless coercion of one API value to a contract type, or a reason why not.

Why its own module: the instance flattener (`pipeline.landing.flatten`), its columnar fast
path and the market's offers all apply the same rule: convert what can be converted
without loss ("12.4" -> 12.4, 0/1 -> bool, {"8080/tcp": ..} -> [8080]) and reject the rest
(`Reject`), which the caller quarantines as NULL + original JSON + reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_EPOCH_S = 253402300799  # 9999-12-31T23:59:59Z
_JSON_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def to_json(value: Any) -> str:
    """Compact JSON text with sorted keys (deterministic, so rebuilds are byte-identical)."""
    try:
        return orjson.dumps(value, option=_JSON_OPTS, default=str).decode()
    except TypeError:  # integers beyond 64 bits: the standard library copes
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe(value: Any) -> str:
    """`string 'abc'`: the type and a short preview for a quarantine reason."""
    text = repr(value) if isinstance(value, str) else to_json(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type_name(value)} {text}"


# -- per-value lossless coercion ------------------------------------------------------------
class Reject(Exception):
    """A value that cannot be converted without loss."""


def to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise Reject
    if isinstance(v, int):
        result = v
    elif isinstance(v, float) and v.is_integer():
        result = int(v)
    elif isinstance(v, str):
        result = to_int(parse_number(v))
    else:
        raise Reject
    if not INT64_MIN <= result <= INT64_MAX:
        raise Reject
    return result


EXACT_FLOAT_INT = 2**53  # the largest range of integers float64 holds exactly


def parse_number(text: str) -> int | float:
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        number = float(s)
    except ValueError:
        raise Reject from None
    if not math.isfinite(number) or abs(number) >= EXACT_FLOAT_INT:
        raise Reject  # "9007199254740993.0" already lost its last digit as a float
    return number


def to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise Reject
    if isinstance(v, str):
        v = parse_number(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Reject
        return v
    if isinstance(v, int):
        if abs(v) > EXACT_FLOAT_INT:  # float64 would round it: not a lossless coercion
            raise Reject
        return float(v)
    raise Reject


def to_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, int | float) and not isinstance(v, bool):
        return to_json(v)  # 18.04 -> "18.04", as the API would have spelled it
    raise Reject


_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})


def to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE or s in _FALSE:
            return s in _TRUE
    raise Reject


def to_seconds(v: Any) -> int | float:
    """Epoch seconds as a number (from a number, a numeric string or an ISO 8601 string)."""
    if isinstance(v, str):
        try:
            number: int | float = parse_number(v)
        except Reject:
            number = iso_seconds(v)
    elif isinstance(v, int | float) and not isinstance(v, bool):
        number = v
    else:
        raise Reject
    if not (math.isfinite(number) and -MAX_EPOCH_S <= number <= MAX_EPOCH_S):
        raise Reject
    return number


def iso_seconds(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Reject from None
    if moment.tzinfo is None:
        raise Reject  # a naive time is ambiguous: not lossless
    return moment.timestamp()


def to_int_list(v: Any) -> list[int]:
    if isinstance(v, dict):  # v1 ports: {"8080/tcp": [...bindings]} -> container ports
        return [to_int(str(k).split("/", 1)[0]) for k in v]
    if isinstance(v, list):
        return [to_int(x) for x in v]
    return [to_int(v)]


def to_str_list(split: bool) -> Callable[[Any], list[str]]:
    def convert(v: Any) -> list[str]:
        if isinstance(v, list):
            return [to_str(x) for x in v]
        if isinstance(v, str):
            return v.split() if split else ([v] if v else [])
        raise Reject
    return convert


# Whole-column conversions of the drift every snapshot carries (one comprehension instead
# of a function call per value). Each returns None when a value might need quarantine.
NONE = type(None)


def bulk_bool(values: list[Any], types: set[type]) -> list[Any] | None:
    """0/1 integers as booleans (flags such as `has_avx` arrive as numbers)."""
    if not types <= {bool, int, NONE} or not set(values) <= {0, 1, None}:
        return None
    return [None if v is None else v == 1 for v in values]


def bulk_str(values: list[Any], types: set[type]) -> list[Any] | None:
    """Numbers where text is expected (`os_version` 18.04 -> "18.04")."""
    if not types <= {str, int, float, NONE}:
        return None
    return [v if v is None or type(v) is str else to_json(v) for v in values]


def bulk_split(values: list[Any], types: set[type]) -> list[Any] | None:
    """`local_ipaddrs`: "10.0.0.2 172.17.0.1 \\n" -> ["10.0.0.2", "172.17.0.1"]."""
    if not types <= {str, list, NONE}:
        return None
    return [v.split() if type(v) is str else v for v in values]
