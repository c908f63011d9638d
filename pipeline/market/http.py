"""The offer search over the project's HTTP client: the one place the market touches it.

Why a subclass: `pipeline.source.client.VastClient` holds the key (bearer auth only), the
per-endpoint pacing, the retries of 429 (which Vast.ai sends without Retry-After) and
502-504 with backoff and jitter within a bounded time, and the typed one-sentence errors,
but it only GETs. The search is a POST of a JSON body (what the official client sends), so
this module swaps the single HTTP call of an attempt for a POST on the search route and
reuses everything around it. When the client grows a POST of its own, this file is what
changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import requests

from pipeline.source.client import VastClient, _reached_server, _Transient

log = logging.getLogger("pipeline.market.http")

SEARCH_PATH = "/api/v0/bundles/"


class SearchClient(VastClient):
    """A `VastClient` that can also POST the offer search (`search`)."""

    def search(self, body: dict) -> dict:
        """One search request (paced, retried within the client's budget): the JSON object
        answered."""
        return self._get_json(SEARCH_PATH, {_BODY: body}, route=SEARCH_PATH)

    def _attempt(self, path: str, params: Mapping[str, object], route: str,
                 attempt: int) -> dict:
        if _BODY not in params:
            return super()._attempt(path, params, route, attempt)
        self._pace(route)
        started = time.monotonic()
        self.stats.requests += 1
        try:
            response = self._session.post(
                self.base_url + path, json=params[_BODY], headers=self._headers(),
                auth=self._auth, timeout=self.timeouts, allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            raise _Transient(self._describe(exc), reached_server=_reached_server(exc)) from None
        self.stats.bytes += len(response.content)
        log.debug("POST %s status=%d attempt=%d %.0f ms", path, response.status_code, attempt,
                  (time.monotonic() - started) * 1000)
        return self._json_of(response, path)


_BODY = "__json_body__"
