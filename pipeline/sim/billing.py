"""The billing model: what each contract (an instance, or a storage volume) is billed
over a window, following the reference's rules.

GPU is billed while `running` or `frozen` at the price then in force, storage whenever
the instance exists except while its host is `offline`, bandwidth per GB at all times; a
volume is billed for its disk every second it exists. Billing walks the same lifecycle
and the same outages the served records show, so the bill and the records agree.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

from pipeline.sim.hosts import HostPool
from pipeline.sim.lifecycle import (
    DISK_UNBILLED_STATUSES,
    GPU_BILLED_STATUSES,
    NO_HOST_OVERLAY,
    PHASES,
    Lifecycle,
)
from pipeline.sim.seeded import DAY_SECONDS, Stream, mix

# Volume contract ids: apart from instance ids.
VOLUME_BASE_ID = 4_000_000


@dataclass(frozen=True, slots=True)
class Volume:
    """A storage volume rented beside the instances: billed for its disk, every second."""

    id: int
    label: str
    size_gb: int
    price_gb_month: float  # $/GB/month, like an instance's storage_cost
    birth: float

    @property
    def rate_per_hour(self) -> float:
        return self.size_gb * self.price_gb_month / 720.0


@dataclass(frozen=True, slots=True)
class Charge:
    """What one contract (an instance, or a volume) was billed over a window (amounts in $).

    `instance_id` is the contract's id; a volume has only disk hours.
    """

    instance_id: int
    label: str | None
    template_id: int | None
    start: float
    end: float
    gpu_hours: float
    gpu_amount: float
    disk_hours: float
    disk_amount: float
    bwd_gb: float
    bwd_amount: float
    bwu_gb: float
    bwu_amount: float
    kind: str = "instance"  # the contract type: instance or volume

    @property
    def amount(self) -> float:
        return self.gpu_amount + self.disk_amount + self.bwd_amount + self.bwu_amount


def new_volume(seed: int, index: int, origin_epoch: float) -> Volume:
    """The fleet's `index`-th volume (one every three days from the origin)."""
    rng = random.Random(mix(seed, Stream.VOLUME, index))
    return Volume(id=VOLUME_BASE_ID + (seed % 10_000) * 100 + index,
                  label=f"datasets-{index}", size_gb=rng.choice((100, 250, 500, 1000)),
                  price_gb_month=round(rng.uniform(0.05, 0.2), 4),
                  birth=origin_epoch + index * 3 * DAY_SECONDS)


def volume_charges(volumes: tuple[Volume, ...], a: float, b: float) -> list[Charge]:
    """Per-volume billed charges over [a, b), by id: disk every second it exists."""
    out = []
    for vol in volumes:
        s = max(a, vol.birth)
        if s >= b:
            continue
        hours = (b - s) / 3600.0
        out.append(Charge(
            instance_id=vol.id, label=vol.label, template_id=None, start=s, end=b,
            gpu_hours=0.0, gpu_amount=0.0, disk_hours=hours,
            disk_amount=hours * vol.rate_per_hour, bwd_gb=0.0, bwd_amount=0.0,
            bwu_gb=0.0, bwu_amount=0.0, kind="volume"))
    return out


def instance_charge(lc: Lifecycle, a: float, b: float, hosts: HostPool,
                    seed: int) -> Charge | None:
    """What instance `lc` was billed over [a, b) (None if it did not exist then)."""
    a, b = max(a, lc.birth), min(b, lc.death)
    if a >= b:
        return None
    gpu_s = gpu_amount = disk_s = 0.0
    hi = lc.machine.host_index
    for s, e, phase in lc.phases_between(a, b):
        for s2, e2, actual in overlay(hosts, hi, s, e, phase):
            if actual in GPU_BILLED_STATUSES:
                gpu_s += e2 - s2
                gpu_amount += _price_integral(lc, s2, e2, seed)
            if actual not in DISK_UNBILLED_STATUSES:
                disk_s += e2 - s2
    hours = (b - a) / 3600.0
    bwd, bwu = hours * lc.down_gb_per_hour, hours * lc.up_gb_per_hour
    return Charge(
        instance_id=lc.id, label=lc.static["label"], template_id=lc.static["template_id"],
        start=a, end=b, gpu_hours=gpu_s / 3600.0, gpu_amount=gpu_amount,
        disk_hours=disk_s / 3600.0, disk_amount=disk_s / 3600.0 * lc.storage_total_cost,
        bwd_gb=bwd, bwd_amount=bwd * lc.machine.inet_down_cost,
        bwu_gb=bwu, bwu_amount=bwu * lc.machine.inet_up_cost)


def overlay(hosts: HostPool, hi: int, s: float, e: float,
             phase: str) -> Iterator[tuple[float, float, str | None]]:
    """Split a phase interval by host outages into (start, end, actual_status)."""
    base = PHASES[phase][0]
    if phase in NO_HOST_OVERLAY:
        yield s, e, base
        return
    # Outages may overlap (one from the day before can run into today's), so the status
    # of each piece between consecutive boundaries is decided by `outage_at`, the same
    # rule the served records use: billing and records agree by construction.
    bounds = {s, e}
    for os_, oe, _ in hosts.outages_between(hi, s, e):
        bounds.update((os_, oe))
    points = sorted(bounds)
    start, status = s, base
    for lo, hi_ in pairwise(points):
        piece = hosts.outage_at(hi, (lo + hi_) / 2) or base
        if lo > start and piece != status:
            yield start, lo, status
            start = lo
        status = piece
    if start < e:
        yield start, e, status


def _price_integral(lc: Lifecycle, s: float, e: float, seed: int) -> float:
    """$ of GPU time over [s, e): price steps at fixed offsets from birth for bids."""
    if not lc.is_bid:
        return lc.base_price * (e - s) / 3600.0
    total, cursor = 0.0, s
    step = int((s - lc.birth) // lc.price_step)
    while cursor < e:
        end = min(e, lc.birth + (step + 1) * lc.price_step)
        if end > cursor:
            total += lc.price_of_step(step, seed) * (end - cursor) / 3600.0
        cursor = max(cursor, end)
        step += 1
    return total
