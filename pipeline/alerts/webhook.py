"""Posting to webhook receivers and pinging the heartbeat URL, without leaking either URL.

Webhook URLs are bearer secrets (a Slack or Discord incoming-webhook URL is all it takes to
post to the channel), so they are handled like the API key in `pipeline.source.client`:
- error texts are built from the failure's kind and the HTTP status only, never from
  requests' own messages (which quote the host and path);
- urllib3 logs each request line at DEBUG (`--debug`) as `path?query`: a filter rewrites
  every form of a registered URL in those records before they are emitted, with
  `pipeline.core.secrets.redact`, the one redactor (a Google Chat webhook carries its
  token in the query, a Slack one in the path).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import requests

from pipeline import __version__
from pipeline.core.retry import Backoff, retry
from pipeline.core.secrets import redact

USER_AGENT = f"vast-pipeline/{__version__} (alerts)"
_MAX_BACKOFF_SECONDS = 30.0
_MIN_QUERY_SECRET = 8  # shorter query values (`v=1`, `alt=json`) would shred the text


class _RedactSecrets(logging.Filter):
    """Rewrites registered secret URLs (and their paths) out of log records."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, url: str) -> None:
        """Registers `url` in every form it can be logged in: whole, as urllib3's request
        target (`path?query`), the path, the query, and each long query value (raw and
        decoded), since any of them can be the bearer token."""
        self.secrets.update(s for s in _url_forms(url) if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = redact(record.getMessage(), self.secrets)
            record.args = None
        return True


def _url_forms(url: str) -> set[str]:
    parts = urlsplit(url)
    forms = {url, parts.query}
    if len(parts.path) > 1:
        forms.add(parts.path)
    if parts.query:
        forms.add(f"{parts.path}?{parts.query}")
    for pair in parts.query.split("&"):
        raw = pair.partition("=")[2]
        if len(raw) >= _MIN_QUERY_SECRET:
            forms.add(raw)
    forms.update(value for _name, value in parse_qsl(parts.query)
                 if len(value) >= _MIN_QUERY_SECRET)
    return forms


_REDACTOR = _RedactSecrets()
logging.getLogger("urllib3.connectionpool").addFilter(_REDACTOR)


def posted_urls() -> frozenset[str]:
    """Every form of every URL this process has posted to or pinged (see `_url_forms`), for
    `pipeline.core.secrets.redact`."""
    return frozenset(_REDACTOR.secrets)


@dataclass(frozen=True)
class Attempted:
    """How one message fared: accepted or not, after how many tries, and why not."""

    accepted: bool
    attempts: int
    status_code: int | None = None
    error: str = ""


def post_json(url: str, payload: dict, *, attempts: int, backoff_seconds: float,
              timeout_seconds: float, sleep: Callable[[float], None] = time.sleep) -> Attempted:
    """POST `payload` until a 2xx answer, retrying failures with exponential backoff
    (`pipeline.core.retry`).

    Everything but a 2xx is retried (a 4xx too: a misconfigured receiver is often fixed
    while the message waits); what is still refused after `attempts` is the caller's to
    queue.
    """
    _REDACTOR.add(url)
    tries = 0

    def once() -> Attempted:
        nonlocal tries
        tries += 1
        answer = _once("POST", url, timeout_seconds, tries, json=payload)
        if not answer.accepted:
            raise _Refused(answer)
        return answer

    # No jitter: one process posts its queue in order, so there is no herd to spread.
    backoff = Backoff(base=backoff_seconds, cap=_MAX_BACKOFF_SECONDS, jitter=0.0,
                      attempts=attempts)
    try:
        return retry(once, backoff, retry_on=lambda e: isinstance(e, _Refused), sleep=sleep)
    except _Refused as refused:
        return refused.answer


class _Refused(Exception):
    """A POST that was not accepted (retryable; internal to `post_json`)."""

    def __init__(self, answer: Attempted) -> None:
        super().__init__(answer.error)
        self.answer = answer


def get(url: str, *, timeout_seconds: float) -> Attempted:
    """One GET (the heartbeat); a miss is not retried, the next collection pings again."""
    _REDACTOR.add(url)
    return _once("GET", url, timeout_seconds, 1)


def _once(method: str, url: str, timeout: float, attempt: int, **kwargs: object) -> Attempted:
    try:
        response = requests.request(method, url, timeout=timeout,
                                    headers={"User-Agent": USER_AGENT}, **kwargs)
    except requests.RequestException as exc:
        return Attempted(False, attempt, None, describe(exc, timeout))
    response.close()
    if 200 <= response.status_code < 300:
        return Attempted(True, attempt, response.status_code)
    return Attempted(False, attempt, response.status_code,
                     f"the receiver answered HTTP {response.status_code}")


def describe(exc: requests.RequestException, timeout: float) -> str:
    """What went wrong, from the exception's type only (its text quotes the URL)."""
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS handshake failed"
    if isinstance(exc, requests.ConnectionError):
        reason = _root_cause(exc)
        if isinstance(reason, ConnectionRefusedError):
            return "the connection was refused"
        if "NameResolution" in type(reason).__name__ or "gaierror" in type(reason).__name__:
            return "the host name did not resolve"
        return "the connection failed"
    return f"the request failed ({type(exc).__name__})"


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while True:
        nxt = seen.__cause__ or seen.__context__ or getattr(seen, "reason", None)
        if not isinstance(nxt, BaseException) or nxt is seen:
            return seen
        seen = nxt
