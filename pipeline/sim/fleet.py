"""A deterministic model of one Vast.ai account's fleet of GPU instances over time.

The simulator serves this model over HTTP so the demo and the tests can exercise the
whole pipeline without a Vast.ai account. Everything is a pure function of the
constructor arguments and the moment asked about: instances arrive in hourly slots (a
seeded Poisson count per slot), each gets a seeded lifecycle (`lifecycle`), hosts suffer
seeded outages and drift in `reliability2` (`hosts`), bid prices step every few hours.
Nothing depends on the order of calls, so two processes (the simulator and a test)
always agree on what the fleet looked like at a given moment.

Ids grow with arrival time and are never reused; a destroyed instance disappears. This
module holds the arrivals and the id lookup; the record (`records`) and the bill
(`billing`) are built from the lifecycles it hands out.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pipeline.sim.billing import Charge, Volume, instance_charge, new_volume, volume_charges
from pipeline.sim.catalogue import GPU_MODELS, SECRET_ENV_NAMES, GpuModel
from pipeline.sim.defaults import DEFAULT_FLEET_SIZE, DEFAULT_ORIGIN, DEFAULT_VOLUMES
from pipeline.sim.hosts import Host, HostPool, Machine
from pipeline.sim.lifecycle import (
    ACTUAL_STATUSES,
    CUR_STATES,
    INTENDED_STATUSES,
    MAX_LIFETIME_SECONDS,
    MEAN_LIFETIME_SECONDS,
    PHASES,
    Lifecycle,
    draw_phases,
    mean_lifetime,
    sample_lifetime,
)
from pipeline.sim.records import (
    COMPUTED_KEYS,
    RECORD_KEYS,
    clean_record,
    effective_status,
    served_record,
    static_record,
)
from pipeline.sim.seeded import Stream, mix, poisson, to_epoch, unit

SLOT_SECONDS = 3600.0
BASE_ID = 30_000_000
_MAX_LOOKUP_SLOTS = 10 * 366 * 24  # ids are looked up within ten years of the origin

# Names other modules import from here (the fleet's vocabulary, kept in one import).
__all__ = [
    "ACTUAL_STATUSES", "COMPUTED_KEYS", "CUR_STATES", "GPU_MODELS", "INTENDED_STATUSES",
    "MEAN_LIFETIME_SECONDS", "PHASES", "RECORD_KEYS", "Charge", "FleetModel", "GpuModel",
    "Host", "Lifecycle", "Machine", "Volume", "mean_lifetime", "to_epoch",
]


class FleetModel:
    """A seeded account fleet: `records_at(t)` is what the API would list at moment `t`."""

    def __init__(self, seed: int = 0, size: int = DEFAULT_FLEET_SIZE, *,
                 drift_rate: float = 0.0, new_field_rate: float = 0.0,
                 broken_rate: float = 0.0, origin: datetime = DEFAULT_ORIGIN,
                 volumes: int = DEFAULT_VOLUMES) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        if not 0 <= volumes <= 1000:
            raise ValueError("volumes must be within 0..1000")
        for name, rate in (("drift_rate", drift_rate), ("new_field_rate", new_field_rate),
                           ("broken_rate", broken_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        self.seed = seed
        self.size = size
        self.drift_rate = drift_rate
        self.new_field_rate = new_field_rate
        self.broken_rate = broken_rate
        self.origin = origin
        self._origin_epoch = to_epoch(origin)
        self._arrivals_per_slot = size * SLOT_SECONDS / MEAN_LIFETIME_SECONDS
        self._lock = threading.RLock()
        self._counts: dict[int, int] = {}
        self._prefix_pos: list[int] = [0]   # _prefix_pos[k] = arrivals in slots 0..k-1
        self._prefix_neg: list[int] = [0]   # _prefix_neg[k] = arrivals in slots -k..-1
        self._slots: dict[int, tuple[Lifecycle, ...]] = {}
        self.credit_balance = round(200 + 4800 * unit(seed, 99), 2)
        self.host_pool = HostPool(seed, size)
        self.hosts, self.machines = self.host_pool.hosts, self.host_pool.machines
        self.volumes = tuple(new_volume(seed, i, self._origin_epoch) for i in range(volumes))

    def __repr__(self) -> str:
        return f"FleetModel(seed={self.seed}, size={self.size}, drift_rate={self.drift_rate})"

    # ---- public API -------------------------------------------------------------------

    def records_at(self, t: datetime | float) -> list[Any]:
        """The instances existing at `t` as the API serves them, sorted by id (fresh objects)."""
        return [served for _, _, served in self.entries_at(t)]

    def record(self, instance_id: int, t: datetime | float) -> Any | None:
        """The served record of one instance at `t`, or None if it does not exist then."""
        lc = self.lifecycle(instance_id)
        te = to_epoch(t)
        if lc is None or not lc.birth <= te < lc.death:
            return None
        return self._served(lc, self._clean_record(lc, te), te)

    def entries_at(self, t: datetime | float) -> list[tuple[int, dict[str, Any], Any]]:
        """(id, clean record, served record) for every instance alive at `t`, by id.

        The simulator filters and orders on the clean record (the server's own view) and
        sends the served one, which may carry type drift or be broken on purpose.
        """
        te = to_epoch(t)
        out = []
        for lc in self._alive(te):
            clean = self._clean_record(lc, te)
            out.append((lc.id, clean, self._served(lc, clean, te)))
        return out

    def clean_records_at(self, t: datetime | float) -> list[dict[str, Any]]:
        """Records at `t` without any drift, new fields or breakage (the ground truth)."""
        te = to_epoch(t)
        return [self._clean_record(lc, te) for lc in self._alive(te)]

    def ids_at(self, t: datetime | float) -> list[int]:
        """Ids of the instances existing at `t`, ascending."""
        return [lc.id for lc in self._alive(to_epoch(t))]

    def lifecycle(self, instance_id: int) -> Lifecycle | None:
        """The lifecycle of an id ever issued by this fleet (None for ids never issued)."""
        if not isinstance(instance_id, int) or abs(instance_id - BASE_ID) > 10**7:
            return None
        offset = instance_id - BASE_ID
        k = math.floor(offset / max(self._arrivals_per_slot, 1e-9))
        if abs(k) > _MAX_LOOKUP_SLOTS:
            return None
        # prefix(k) is non-decreasing in k: gallop to a bracket, then bisect.
        step = 1
        while self._prefix(k) > offset:
            k -= step
            step *= 2
        lo = k
        step = 1
        while self._prefix(k + 1) <= offset:
            k += step
            step *= 2
        hi = k + 1  # prefix(lo) <= offset < prefix(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._prefix(mid) <= offset:
                lo = mid
            else:
                hi = mid
        return self._slot(lo)[offset - self._prefix(lo)]

    def secret_values_at(self, t: datetime | float) -> set[str]:
        """Every secret the API serves at `t`: jupyter tokens and secret `extra_env` values.

        Tests elsewhere search files and logs for each of these to prove none leaked.
        """
        secrets: set[str] = set()
        for rec in self.clean_records_at(t):
            secrets.add(rec["jupyter_token"])
            secrets.update(value for name, value in rec["extra_env"] if name in SECRET_ENV_NAMES)
        return secrets

    def charges(self, start: datetime | float, end: datetime | float) -> list[Charge]:
        """Per-instance billed charges over [start, end), by id, following the billing rules.

        GPU is billed while `running` or `frozen` at the price then in force, storage
        whenever the instance exists except while `offline`, bandwidth per GB at all times.
        """
        a, b = to_epoch(start), to_epoch(end)
        if b <= a:
            return []
        out = []
        for lc in self._overlapping(a, b):
            charge = instance_charge(lc, a, b, self.host_pool, self.seed)
            if charge is not None:
                out.append(charge)
        return out

    def volume_charges(self, start: datetime | float, end: datetime | float) -> list[Charge]:
        """Per-volume billed charges over [start, end), by id: disk every second it exists."""
        return volume_charges(self.volumes, to_epoch(start), to_epoch(end))

    # ---- arrivals and ids ------------------------------------------------------------

    def _count(self, k: int) -> int:
        n = self._counts.get(k)
        if n is None:
            n = poisson(self._arrivals_per_slot, random.Random(mix(self.seed, Stream.ARRIVALS, k)))
            self._counts[k] = n
        return n

    def _prefix(self, k: int) -> int:
        """Arrivals between slot 0 and slot k (negative for k < 0): the id offset of slot k."""
        with self._lock:
            if k >= 0:
                while len(self._prefix_pos) <= k:
                    self._prefix_pos.append(self._prefix_pos[-1] + self._count(
                        len(self._prefix_pos) - 1))
                return self._prefix_pos[k]
            while len(self._prefix_neg) <= -k:
                j = len(self._prefix_neg)
                self._prefix_neg.append(self._prefix_neg[-1] + self._count(-j))
            return -self._prefix_neg[-k]

    def _slot_index(self, te: float) -> int:
        return math.floor((te - self._origin_epoch) / SLOT_SECONDS)

    def _slot(self, k: int) -> tuple[Lifecycle, ...]:
        cached = self._slots.get(k)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._slots.get(k)
            if cached is None:
                rng = random.Random(mix(self.seed, Stream.ARRIVALS, k, 1))
                start = self._origin_epoch + k * SLOT_SECONDS
                births = sorted(start + rng.random() * SLOT_SECONDS for _ in range(self._count(k)))
                first_id = BASE_ID + self._prefix(k)
                cached = tuple(self._new_lifecycle(first_id + j, b) for j, b in enumerate(births))
                self._slots[k] = cached
        return cached

    def _overlapping(self, a: float, b: float) -> Iterator[Lifecycle]:
        first = self._slot_index(a - MAX_LIFETIME_SECONDS) - 1
        last = self._slot_index(b)
        for k in range(first, last + 1):
            for lc in self._slot(k):
                if lc.birth < b and lc.death > a:
                    yield lc

    def _alive(self, te: float) -> list[Lifecycle]:
        first = self._slot_index(te - MAX_LIFETIME_SECONDS) - 1
        last = self._slot_index(te)
        alive = []
        for k in range(first, last + 1):
            alive.extend(lc for lc in self._slot(k) if lc.birth <= te < lc.death)
        return alive

    # ---- hosts (delegated to the pool) -------------------------------------------------

    def outage_at(self, hi: int, te: float) -> str | None:
        """`offline`/`unknown` while host `hi` is in an outage at `te`, else None."""
        return self.host_pool.outage_at(hi, te)

    def reliability_at(self, hi: int, te: float) -> float:
        """`reliability2` of host `hi` at `te`."""
        return self.host_pool.reliability_at(hi, te)

    # ---- lifecycles -------------------------------------------------------------------

    def _new_lifecycle(self, instance_id: int, birth: float) -> Lifecycle:
        rng = random.Random(mix(self.seed, Stream.LIFE, instance_id))
        death = birth + sample_lifetime(rng)
        machine = self.machines[rng.randrange(len(self.machines))]
        num_gpus = rng.choice([n for n in (1, 1, 2, 4, 8) if n <= machine.max_gpus])
        is_bid = rng.random() < 0.2
        starts, kinds = draw_phases(rng, birth, death)
        static = static_record(rng, instance_id, birth, machine, num_gpus, is_bid,
                               self.credit_balance)
        discount = rng.choice((0.0, 0.0, 0.0, 0.1, 0.2, 0.3))
        return Lifecycle(
            id=instance_id, birth=birth, death=death, machine=machine, num_gpus=num_gpus,
            is_bid=is_bid, base_price=round(machine.price_per_gpu * num_gpus, 4),
            price_step=rng.uniform(2, 6) * 3600.0, discount=discount,
            idle=rng.random() < 0.2, util_base=rng.uniform(0.45, 0.98),
            down_gb_per_hour=round(rng.uniform(0.01, 8.0), 3),
            up_gb_per_hour=round(rng.uniform(0.01, 2.0), 3),
            phase_starts=starts, phase_kinds=kinds, static=static)


    # ---- records -----------------------------------------------------------------------

    def effective_status(self, lc: Lifecycle, te: float) -> tuple[str, float, str | None]:
        """(phase, phase start, actual_status) at `te`, host outages overlaid."""
        return effective_status(lc, te, self.host_pool)

    def _clean_record(self, lc: Lifecycle, te: float) -> dict[str, Any]:
        return clean_record(lc, te, self.seed, self.host_pool)

    def _served(self, lc: Lifecycle, clean: dict[str, Any], te: float) -> Any:
        return served_record(lc, clean, te, self.seed,
                             (self.drift_rate, self.new_field_rate, self.broken_rate))
