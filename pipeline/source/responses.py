"""What one HTTP answer (or failure) of the Vast.ai API means: a JSON object, a transient
failure worth retrying, or one typed error sentence.

Why a module of its own: turning answers into outcomes is the part of the client that
grows with every odd thing a server or proxy does, and it needs no state, so it is kept
apart from the transport's waiting and retrying:
- 429/502/503/504, connection errors, timeouts and an unparseable 200 body (truncation is
  usually a dropped connection) are `Transient`; a parseable body of the wrong shape is
  not, because asking again will not change it;
- every other failure is one of the `pipeline.core.errors` classes, with one sentence that
  says what went wrong and what to do, quoting at most a short, cleaned, redacted piece of
  the server's own message and never a URL or header (requests' messages quote the URL).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
import urllib3

from pipeline.core.errors import (
    ApiUnreachableError,
    AuthError,
    BadResponseError,
    BadTokenError,
    EndpointRetiredError,
    RetriesExhaustedError,
    VastApiError,
)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
BAD_BODY_RETRIES = 2  # extra tries for an unparseable 200 body before BadResponseError
_MAX_SERVER_TEXT = 160  # characters of a server's error message we quote
TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError)


@dataclass
class Transient(Exception):
    """One attempt failed in a way worth retrying (never escapes the client)."""

    cause: str
    reached_server: bool
    retry_after: float | None = None
    bad_body: bool = False
    status: int | None = None


def json_of(response: requests.Response, path: str, redact: Callable[[str], str]) -> dict:
    """The response's JSON object, or the typed reason it is not usable."""
    status = response.status_code
    if status in RETRYABLE_STATUSES:
        raise Transient(f"HTTP {status}", reached_server=True,
                        retry_after=retry_after(response), status=status)
    if not 200 <= status < 300:
        raise status_error(response, path, redact)
    try:
        # NaN and Infinity are not JSON; kept as their text, flattening quarantines them
        # with the original value instead of a float that no Parquet reader agrees on.
        body = json.loads(response.content, parse_constant=str)
    except ValueError:
        raise Transient(_body_kind(response), reached_server=True, bad_body=True,
                        status=status) from None
    if not isinstance(body, dict):
        raise bad_shape(path, "is not a JSON object")
    return body


def transport_failure(exc: requests.RequestException,
                      timeouts: tuple[float, float]) -> Transient:
    """A transport failure as a Transient, with a short cause (never the URL or headers)."""
    return Transient(_describe(exc, timeouts), reached_server=_reached_server(exc))


def status_error(response: requests.Response, path: str,
                 redact: Callable[[str], str]) -> VastApiError:
    """The typed error for a non-retryable, non-2xx answer."""
    status = response.status_code
    code, message = _error_fields(response, redact)
    if (status == 404 and code == "auth_error") or status == 401:
        return AuthError(
            f"Vast.ai refused the API key ({status} {code or 'unauthorized'}): "
            "check VAST_API_KEY."
        )
    if status == 403:
        return AuthError(
            f"Vast.ai refused access to {path} (403, missing or insufficient API key): "
            "set VAST_API_KEY to a key allowed to read instances."
        )
    if status == 410:
        return EndpointRetiredError(
            f"Vast.ai has retired {path} ({status} {code or 'gone'}): use a "
            "vast-pipeline version that reads /api/v1/instances/ instead."
        )
    if status == 400 and code == "invalid_token":
        return BadTokenError(
            f"Vast.ai refused the pagination cursor on {path} (400 invalid_token): "
            "run the listing again from the start."
        )
    if 300 <= status < 400:
        return BadResponseError(
            f"Vast.ai answered {path} with a redirect (HTTP {status}): check that "
            "VAST_URL is the API's base URL, e.g. https://console.vast.ai."
        )
    said = "; ".join(part for part in (code, message) if part)
    detail = f" ({said})" if said else ""
    return VastApiError(
        f"Vast.ai answered HTTP {status} on {path}{detail}: check the request "
        "and try again later."
    )


def exhausted(base_url: str, path: str, attempts: int, seconds: float, last: Transient,
              reached: bool) -> RetriesExhaustedError:
    """The error once the retry budget is spent; unreachable if no server ever answered."""
    if not reached:
        return ApiUnreachableError(
            f"Could not connect to {base_url} for {path} after {attempts} attempts "
            f"in {seconds:.1f} s (last: {last.cause}): check VAST_URL and the network."
        )
    return RetriesExhaustedError(
        f"Gave up on {path} after {attempts} attempts in {seconds:.1f} s "
        f"(last: {last.cause}): Vast.ai is busy or rate-limiting; try again later."
    )


def bad_shape(path: str, problem: str) -> BadResponseError:
    """A parseable body of the wrong shape: not retried, asking again will not change it."""
    return BadResponseError(
        f"Vast.ai's answer on {path} {problem}: the API may have changed; "
        "check VAST_URL and report it if it persists."
    )


def bad_body(path: str, last: Transient) -> BadResponseError:
    """An unparseable body that stayed unparseable after BAD_BODY_RETRIES more tries."""
    return BadResponseError(
        f"Vast.ai sent {last.cause} on {path} (HTTP {last.status}) "
        f"{BAD_BODY_RETRIES + 1} times in a row: check VAST_URL and try again later."
    )


def retry_after(response: requests.Response) -> float | None:
    """Seconds asked for by a Retry-After header (seconds or HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _body_kind(response: requests.Response) -> str:
    """What an unparseable body looks like, for the error message."""
    content = response.content.lstrip()
    if not content:
        return "an empty body"
    if "html" in response.headers.get("Content-Type", "").lower() or content[:1] == b"<":
        return "an HTML page"
    return "truncated or malformed JSON"


def _error_fields(response: requests.Response, redact: Callable[[str], str]) -> tuple[str, str]:
    """The server's error code and message (msg, else detail), cleaned and shortened."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return "", ""
    code = body.get("error")
    message = body.get("msg") or body.get("detail") or body.get("message")
    return _clean(code, redact), _clean(message, redact)


def _clean(value: object, redact: Callable[[str], str]) -> str:
    """One short printable line of server text, with the API key redacted."""
    if not isinstance(value, str):
        return ""
    text = redact(value)
    text = re.sub(r"\s+", " ", "".join(ch if ch.isprintable() else " " for ch in text)).strip()
    if len(text) > _MAX_SERVER_TEXT:
        text = text[: _MAX_SERVER_TEXT - 1].rstrip() + "…"
    return text


def _describe(exc: requests.RequestException, timeouts: tuple[float, float]) -> str:
    """A short cause for a transport failure (never the URL or headers)."""
    if isinstance(exc, requests.ConnectTimeout):
        return f"connect timeout after {timeouts[0]:g} s"
    if isinstance(exc, requests.ReadTimeout):
        return f"read timeout after {timeouts[1]:g} s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError
                  | requests.exceptions.ContentDecodingError):
        return "response cut off mid-body"
    reason = _os_reason(exc)
    return f"connection failed ({reason})" if reason else "connection failed"


def _reached_server(exc: requests.RequestException) -> bool:
    """Whether a transport failure happened after a connection was made."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return not isinstance(reason, urllib3.exceptions.NewConnectionError)
    return True


def _os_reason(exc: BaseException) -> str:
    """The innermost OS error text (e.g. 'connection refused'), found along the chain."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
    return ""
