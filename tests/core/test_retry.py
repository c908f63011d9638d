"""The one retry helper: which failures are retried, how long the waits are, and that a
call never outlasts its budget (real sleeps on a real clock, and a virtual clock where an
attempt's own duration matters)."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.retry import Backoff, retry


class Flaky(Exception):
    """A failure the tests declare retryable."""


class Fatal(Exception):
    """A failure the tests declare not retryable."""


def is_flaky(error: Exception) -> bool:
    return isinstance(error, Flaky)


def failing(times: int, result: str = "done") -> tuple[list[float], object]:
    """A call that raises Flaky `times` times, then returns `result`; it logs each start."""
    starts: list[float] = []

    def call() -> str:
        starts.append(time.monotonic())
        if len(starts) <= times:
            raise Flaky(f"try {len(starts)}")
        return result

    return starts, call


@settings(max_examples=200, deadline=None)
@given(retry_number=st.integers(1, 80), base=st.floats(0.0, 10.0),
       cap=st.floats(0.0, 60.0), jitter=st.floats(0.0, 1.0), seed=st.integers(0, 2**32))
def test_a_wait_lies_within_its_jitter_below_the_exponential_ceiling(
        retry_number: int, base: float, cap: float, jitter: float, seed: int) -> None:
    backoff = Backoff(base=base, cap=cap, jitter=jitter, attempts=3)
    ceiling = min(cap, base * 2 ** (retry_number - 1))
    delay = backoff.delay(retry_number, random.Random(seed))
    assert ceiling * (1 - jitter) - 1e-9 <= delay <= ceiling + 1e-9


def test_full_jitter_spreads_the_waits_and_no_jitter_waits_the_ceiling() -> None:
    rng = random.Random(20)
    full = Backoff(base=1.0, cap=8.0, jitter=1.0, attempts=9)
    waits = [full.delay(4, rng) for _ in range(400)]  # ceiling 8 s
    assert min(waits) < 1.0 and max(waits) > 7.0
    exact = Backoff(base=1.0, cap=8.0, jitter=0.0, attempts=9)
    assert [exact.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_a_retryable_failure_is_retried_until_the_call_succeeds() -> None:
    waited: list[float] = []
    starts, call = failing(3)
    backoff = Backoff(base=1.0, cap=10.0, jitter=0.0, attempts=5)
    assert retry(call, backoff, retry_on=is_flaky, sleep=waited.append) == "done"
    assert len(starts) == 4
    assert waited == [1.0, 2.0, 4.0]


def test_a_failure_not_retried_is_raised_at_once() -> None:
    calls: list[int] = []
    waited: list[float] = []

    def call() -> None:
        calls.append(1)
        raise Fatal("no")

    with pytest.raises(Fatal):
        retry(call, Backoff(base=0.0, cap=0.0, attempts=5), retry_on=is_flaky,
              sleep=waited.append)
    assert calls == [1] and waited == []


def test_when_the_attempts_are_spent_the_last_failure_is_raised_as_it_was() -> None:
    starts, call = failing(10)
    with pytest.raises(Flaky, match="try 3"):
        retry(call, Backoff(base=0.0, cap=0.0, attempts=3), retry_on=is_flaky)
    assert len(starts) == 3


def test_wait_stretches_a_delay_and_on_retry_hears_each_one() -> None:
    waited: list[float] = []
    heard: list[tuple[int, str, float]] = []
    _starts, call = failing(2)
    retry(call, Backoff(base=0.5, cap=0.5, jitter=0.0, attempts=4), retry_on=is_flaky,
          wait=lambda _failure, delay: delay + 3.0,
          on_retry=lambda n, failure, delay: heard.append((n, str(failure), delay)),
          sleep=waited.append)
    assert waited == [3.5, 3.5]
    assert heard == [(1, "try 1", 3.5), (2, "try 2", 3.5)]


def test_the_total_time_is_bounded_on_a_real_clock() -> None:
    """Always failing, no attempt bound: it stops when the next wait would pass 0.6 s."""
    starts, call = failing(10**6)
    begun = time.monotonic()
    with pytest.raises(Flaky):
        retry(call, Backoff(base=0.02, cap=0.1, jitter=1.0, total_seconds=0.6),
              retry_on=is_flaky)
    elapsed = time.monotonic() - begun
    assert len(starts) >= 4  # it did retry, more than a couple of times
    assert starts[-1] - begun <= 0.6  # the last attempt started within the budget
    assert elapsed < 0.6 + 0.25  # and nothing but that attempt came after


def test_slow_attempts_count_against_the_time_budget() -> None:
    """On a virtual clock where each attempt takes 2 s and each wait its length: with a
    10 s budget, the attempts start at 0, 3, 6 and 9 s, and no fifth one starts at 12."""
    now = [0.0]
    starts: list[float] = []

    def call() -> None:
        starts.append(now[0])
        now[0] += 2.0
        raise Flaky("slow")

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(Flaky):
        retry(call, Backoff(base=1.0, cap=1.0, jitter=0.0, total_seconds=10.0),
              retry_on=is_flaky, sleep=sleep, clock=lambda: now[0])
    assert starts == [0.0, 3.0, 6.0, 9.0]


def test_a_backoff_without_any_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="attempts or total_seconds"):
        Backoff(base=1.0, cap=1.0)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(base=1.0, cap=1.0, jitter=1.5, attempts=2)
