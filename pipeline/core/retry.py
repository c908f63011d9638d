"""Retrying with exponential backoff and jitter, within an attempt and a time budget.

Why one helper: the API client, the object-store lease, the day locks and the webhook
delivery all retry, and each used to space and bound its tries its own way. Here is the
one rule, so each caller only says what to retry, how often and for how long:
- the n-th retry waits `min(cap, base * 2 ** (n - 1))` less a random part of it
  (`jitter` 1.0 is "full jitter", anywhere from 0 to the ceiling, which spreads clients
  that failed together; 0.0 waits the ceiling exactly);
- a caller may stretch a wait (a server's `Retry-After`, an endpoint's pacing) through
  `wait`;
- `total_seconds` bounds the time spent before the last attempt starts: a retry whose
  wait would end past it is not made, so the whole call takes at most the budget plus one
  attempt's own duration; `attempts` bounds the tries;
- only what `retry_on` accepts is retried; anything else is raised at once, and when the
  budget is spent the last failure is raised as it was.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """How retries are spaced and bounded (see the module docstring)."""

    base: float  # the first retry's ceiling, in seconds
    cap: float  # no wait is longer than this (before `wait` stretches it)
    jitter: float = 1.0  # the random share of each wait: 1.0 full jitter, 0.0 none
    attempts: int | None = None  # tries in all (None: as many as `total_seconds` allows)
    total_seconds: float | None = None  # time before the last attempt starts

    def __post_init__(self) -> None:
        if self.attempts is None and self.total_seconds is None:
            raise ValueError("a Backoff needs attempts or total_seconds (or both)")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def ceiling(self, retry: int) -> float:
        """The longest wait before the `retry`-th retry (1 for the first)."""
        return min(self.cap, self.base * 2 ** min(retry - 1, 60))

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before the `retry`-th retry: its ceiling less a random share of it."""
        ceiling = self.ceiling(retry)
        return ceiling - self.jitter * ceiling * (rng or random).random()


def retry(
    call: Callable[[], T],
    backoff: Backoff,
    *,
    retry_on: Callable[[Exception], bool],
    wait: Callable[[Exception, float], float] | None = None,
    on_retry: Callable[[int, Exception, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """`call()` until it returns, retrying the failures `retry_on` accepts.

    `wait(failure, delay)` may return a longer (or other) wait for a failure; `on_retry`
    is told (retry number, failure, wait) just before each wait.
    """
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as failure:
            if not retry_on(failure):
                raise
            delay = backoff.delay(attempt, rng)
            if wait is not None:
                delay = wait(failure, delay)
            if _spent(backoff, attempt, clock() - started + delay):
                raise
            if on_retry is not None:
                on_retry(attempt, failure, delay)
            sleep(delay)


def _spent(backoff: Backoff, attempt: int, elapsed_after_wait: float) -> bool:
    """Whether no further attempt fits in the budget."""
    if backoff.attempts is not None and attempt >= backoff.attempts:
        return True
    return backoff.total_seconds is not None and elapsed_after_wait > backoff.total_seconds
