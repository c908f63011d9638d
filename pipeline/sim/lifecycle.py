"""One instance's life: the documented status vocabularies, the phases an instance goes
through from provisioning to destroy, and its seeded timeline.

Records and bills both read an instance's state from its `Lifecycle`, so what the API
lists and what the bill charges agree by construction.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.sim.hosts import Machine
from pipeline.sim.seeded import DAY_SECONDS, Stream, unit

MAX_LIFETIME_SECONDS = 30 * DAY_SECONDS

# The documented status vocabularies (the tests check every record against them).
ACTUAL_STATUSES = (None, "created", "loading", "running", "stopped", "frozen", "exited",
                   "rebooting", "unknown", "offline")
INTENDED_STATUSES = ("running", "stopped", "frozen")
CUR_STATES = ("running", "stopped", "unloaded")

# Lifecycle phase -> (actual_status, intended_status, cur_state, next_state).
PHASES: dict[str, tuple[str | None, str, str, str]] = {
    "provisioning": (None, "running", "running", "running"),
    "created": ("created", "running", "running", "running"),
    "loading": ("loading", "running", "running", "running"),
    "running": ("running", "running", "running", "running"),
    "stopped": ("stopped", "stopped", "stopped", "stopped"),
    "rebooting": ("rebooting", "running", "running", "running"),
    "exited": ("exited", "running", "running", "running"),
    "frozen": ("frozen", "frozen", "running", "running"),
    "unloading": ("stopped", "stopped", "unloaded", "unloaded"),
}
NO_HOST_OVERLAY = frozenset({"provisioning", "unloading"})
GPU_BILLED_STATUSES = frozenset({"running", "frozen"})
DISK_UNBILLED_STATUSES = frozenset({"offline"})


def sample_lifetime(rng: random.Random) -> float:
    """Short jobs (hours), medium runs (days) and long-lived boxes (weeks), capped."""
    r = rng.random()
    if r < 0.35:
        median, sigma = 3 * 3600.0, 0.8
    elif r < 0.8:
        median, sigma = 2 * DAY_SECONDS, 0.7
    else:
        median, sigma = 10 * DAY_SECONDS, 0.5
    return min(max(rng.lognormvariate(math.log(median), sigma), 1200.0), MAX_LIFETIME_SECONDS)


def mean_lifetime() -> float:
    """The mean of `sample_lifetime` (sets the arrival rate that keeps `size` alive)."""
    rng = random.Random(20260101)
    n = 20000
    return sum(sample_lifetime(rng) for _ in range(n)) / n


# `mean_lifetime()`, precomputed so importing the module draws nothing (a test checks it).
MEAN_LIFETIME_SECONDS = 298520.93994125887


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Everything about one instance that does not depend on the moment asked about."""

    id: int
    birth: float
    death: float
    machine: Machine
    num_gpus: int
    is_bid: bool
    base_price: float
    price_step: float
    discount: float
    idle: bool
    util_base: float
    down_gb_per_hour: float
    up_gb_per_hour: float
    phase_starts: tuple[float, ...]
    phase_kinds: tuple[str, ...]
    static: dict[str, Any] = field(repr=False)

    def phase_at(self, t: float) -> tuple[str, float]:
        """The lifecycle phase at `t` and when it began."""
        i = bisect_right(self.phase_starts, t) - 1
        return self.phase_kinds[max(i, 0)], self.phase_starts[max(i, 0)]

    def phases_between(self, a: float, b: float) -> Iterator[tuple[float, float, str]]:
        """The phases overlapping [a, b) clipped to it (and to the instance's life)."""
        a, b = max(a, self.birth), min(b, self.death)
        if a >= b:
            return
        i = max(bisect_right(self.phase_starts, a) - 1, 0)
        n = len(self.phase_starts)
        while i < n and self.phase_starts[i] < b:
            end = self.phase_starts[i + 1] if i + 1 < n else self.death
            s, e = max(a, self.phase_starts[i]), min(b, end)
            if s < e:
                yield s, e, self.phase_kinds[i]
            i += 1

    def price_at(self, t: float, seed: int) -> float:
        """`dph_base` at `t`: fixed on demand, stepping every few hours for bids."""
        if not self.is_bid:
            return self.base_price
        return self.price_of_step(int((t - self.birth) // self.price_step), seed)

    def price_of_step(self, step: int, seed: int) -> float:
        """The bid price during the `step`-th price period after birth."""
        factor = 0.75 + 0.5 * unit(seed, Stream.BID, self.id, step)
        return round(self.base_price * factor, 4)

    @property
    def storage_total_cost(self) -> float:
        """$/hour of this instance's disk, as stored on its record."""
        return self.static["storage_total_cost"]


def draw_phases(rng: random.Random, birth: float,
                death: float) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """A seeded sequence of lifecycle phases from birth to destroy."""
    unload = death - rng.uniform(30, 180)
    starts, kinds = [birth], ["provisioning"]

    def add(kind: str, at: float) -> bool:
        if at >= unload:
            return False
        if kinds[-1] != kind:
            starts.append(at)
            kinds.append(kind)
        return True

    t = birth + rng.uniform(20, 240)
    if rng.random() < 0.6 and add("created", t):
        t += rng.uniform(20, 180)
    add("loading", t)
    t += rng.uniform(60, 900) if rng.random() < 0.95 else rng.uniform(1800, 3600)
    while add("running", t):
        t += rng.expovariate(1 / (18 * 3600.0))
        ev = rng.random()
        if ev < 0.45:
            if not add("stopped", t):
                break
            t += min(rng.lognormvariate(math.log(3 * 3600.0), 1.0), 48 * 3600.0)
            if not add("loading", t):
                break
            t += rng.uniform(60, 300)
        elif ev < 0.6:
            if not add("rebooting", t):
                break
            t += rng.uniform(60, 300)
            if not add("loading", t):
                break
            t += rng.uniform(30, 180)
        elif ev < 0.75:
            if not add("exited", t):
                break
            t += rng.uniform(0.25, 24) * 3600.0
            if not add("loading", t):
                break
            t += rng.uniform(60, 300)
        elif ev < 0.82:
            if not add("frozen", t):
                break
            t += rng.uniform(1, 12) * 3600.0
    if unload > birth:
        starts.append(unload)
        kinds.append("unloading")
    return tuple(starts), tuple(kinds)


