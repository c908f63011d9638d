"""Where the API key may go: one header, to a checked base URL, and nowhere else.

Why a module of its own: the key is the one secret the client holds, so everything that
decides where it can travel sits together and can be read in one go:
- it lives in a private auth object that sets `Authorization: Bearer` and is kept out of
  every repr, pickle, URL, log line and error message (`redact` removes a key a server
  echoed back);
- plain http is refused for any host but this machine (the key never crosses a network in
  clear text), and a base URL carrying a user, password, query or fragment is refused;
- loopback is decided here too, because the simulator-only time header may only go there.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import requests

from pipeline.core.errors import ConfigError
from pipeline.core.secrets import REDACTED, redact


class BearerAuth(requests.auth.AuthBase):
    """Holds the API key and puts it in the Authorization header, and nowhere else."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._key}"
        return request

    def redact(self, text: str) -> str:
        """Replace the key wherever a server echoed it back."""
        return redact(text, [self._key])

    def __repr__(self) -> str:
        return f"BearerAuth({REDACTED})"

    def __reduce__(self) -> object:
        raise TypeError("the API key cannot be pickled")


def is_loopback_host(host: str | None) -> bool:
    """Whether host names this machine: 127.0.0.0/8, ::1 or localhost."""
    if not host:
        return False
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_key(api_key: object) -> str:
    """The key without surrounding whitespace; refuse what cannot be a header value."""
    if not isinstance(api_key, str) or not api_key.strip():
        raise ConfigError("No Vast.ai API key was given: set VAST_API_KEY.")
    key = api_key.strip()
    if not key.isascii() or any(ch.isspace() or not ch.isprintable() for ch in key):
        raise ConfigError(
            "The Vast.ai API key contains spaces, control or non-ASCII characters: "
            "check VAST_API_KEY for stray quotes or line breaks."
        )
    return key


def checked_base_url(base_url: object) -> tuple[str, bool]:
    """The base URL without a trailing slash, and whether it points at loopback."""
    parts = urlsplit(base_url) if isinstance(base_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            "VAST_URL is not an http(s) URL with a host: use e.g. https://console.vast.ai."
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(
            "VAST_URL must not carry a user, password, query or fragment: "
            "use e.g. https://console.vast.ai."
        )
    loopback = is_loopback_host(parts.hostname)
    if parts.scheme == "http" and not loopback:
        raise ConfigError(
            "VAST_URL uses plain http for a host that is not this machine: use https so "
            "the API key is never sent in clear text."
        )
    return base_url.rstrip("/"), loopback
