"""Faults the simulator injects at configurable rates, and its throttle answer.

The client must survive what the real service does on a bad day: 429s, 502/503/504 with a
JSON or an HTML body, slow replies and bodies cut mid-JSON. Faults are drawn from one
seeded generator, so a test run with the same seed meets the same faults.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import orjson

from pipeline.sim.replies import Reply

THROTTLE_TEXT = "API requests too frequent: endpoint threshold=1.0"
HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
            b"</body>\r\n</html>\r\n")


@dataclass(frozen=True)
class FaultConfig:
    """Rates (0..1, per request) of injected faults, drawn from a seeded generator."""

    rate_429: float = 0.0        # extra random 429s (on top of real min-interval 429s)
    rate_5xx: float = 0.0        # random 502/503/504
    rate_slow: float = 0.0       # respond after `slow_seconds` (to trigger client read timeouts)
    slow_seconds: float = 2.0
    rate_truncated: float = 0.0  # 200 with a body cut mid-JSON
    rate_html: float = 0.0       # 502 with an HTML error page body
    seed: int = 0


def throttled() -> Reply:
    """The 429 Vast.ai sends over its rate limit: plain text, no Retry-After."""
    return Reply(429, THROTTLE_TEXT.encode(), "text/plain; charset=utf-8")


class FaultDrawer:
    """Draws, per request, whether a fault replaces (or slows, or cuts) the answer."""

    def __init__(self, faults: FaultConfig) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()

    def draw(self) -> Reply | None:
        """A fault reply (status 200 for slow/truncated: the endpoint fills the body), or
        None for no fault."""
        f = self.faults
        with self._lock:
            draws = [self._rng.random() for _ in range(6)]
        if draws[0] < f.rate_429:
            return throttled()
        if draws[1] < f.rate_5xx:
            status = (502, 503, 504)[int(draws[5] * 3)]
            return Reply(status, orjson.dumps({"detail": "upstream unavailable"}))
        if draws[2] < f.rate_html:
            return Reply(502, HTML_502, "text/html")
        slow, truncated = draws[3] < f.rate_slow, draws[4] < f.rate_truncated
        if slow or truncated:
            return Reply(200, b"", truncate=truncated, delay=f.slow_seconds if slow else 0.0)
        return None
