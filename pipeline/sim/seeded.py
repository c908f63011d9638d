"""Seeded randomness that is a pure function of its keys, stable across processes.

The fleet and the market must look the same to the simulator and to a test in another
process whatever order they ask in, so no draw depends on a generator's history: each is
keyed by integers (the seed, a salt naming the stream, an id, a time bucket) and hashed.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from enum import IntEnum

MASK64 = (1 << 64) - 1
DAY_SECONDS = 86400.0  # the simulation keeps time as epoch seconds (`to_epoch`)



class Stream(IntEnum):
    """Salts that keep the independent random streams apart (the values are part of the
    model: changing one changes every fleet)."""

    HOSTS = 1
    ARRIVALS = 2
    LIFE = 3
    OUTAGE = 4
    RELIABILITY = 5
    BID = 6
    NOISE = 7
    DRIFT = 8
    VOLUME = 9
    # the market's: its machines, listings, price trends, the daily rhythm, min bids
    MARKET = 20
    LISTING = 21
    TREND = 22
    RHYTHM = 23
    MARKET_BID = 24
    TIED = 25


def splitmix(x: int) -> int:
    """SplitMix64's finaliser: a cheap, well-mixed 64-bit hash step."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def mix(*parts: int) -> int:
    """A 64-bit hash of integers, stable across processes (unlike `hash()`)."""
    h = 0x243F6A8885A308D3
    for part in parts:
        h = splitmix(h ^ (part & MASK64))
    return h


def unit(*parts: int) -> float:
    """A deterministic uniform number in [0, 1) keyed by integers."""
    return mix(*parts) / 18446744073709551616.0


def to_epoch(t: datetime | float | int) -> float:
    """Epoch seconds of `t`; a naive datetime is read as UTC."""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.timestamp()
    return float(t)


def poisson(lam: float, rng: random.Random) -> int:
    """A Poisson draw (normal approximation above 30)."""
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k

