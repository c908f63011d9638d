"""Hosts and their machines: where instances run and offers come from.

A host (a provider's account) owns machines, suffers seeded outages (`offline` /
`unknown`) and has a `reliability2` drifting day by day. The fleet rents on these machines
and the market lists them, so the same machine shows the same place, hardware and
reliability in an instance record and in an offer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from pipeline.sim.catalogue import CPU_NAMES, DISKS, GPU_MODELS, LOCATIONS, MOBOS, GpuModel
from pipeline.sim.seeded import DAY_SECONDS, Stream, mix, unit


@dataclass(frozen=True, slots=True)
class Machine:
    """One rentable machine; its host decides location, outages and reliability."""

    machine_id: int
    host_index: int
    gpu: GpuModel
    max_gpus: int
    static: dict[str, Any]
    price_per_gpu: float
    storage_cost: float
    inet_up_cost: float
    inet_down_cost: float


@dataclass(frozen=True, slots=True)
class Host:
    """A hosting provider's account: owns machines, has outages and a reliability score."""

    host_id: int
    flakiness: float
    reliability_base: float


class HostPool:
    """A seeded set of hosts and machines with their outages and reliability over time.

    Everything is a pure function of (seed, size, salt) and the moment asked about; the
    caches only save recomputing it.
    """

    def __init__(self, seed: int, size: int, salt: int = Stream.HOSTS, *,
                 n_hosts: int | None = None, id_offset: int = 0) -> None:
        """A fleet of `size` instances gets about size / 5 hosts; the market asks for
        `n_hosts` directly, with ids moved by `id_offset` clear of the fleets' ids."""
        self.seed = seed
        self.size = size
        self._outages: dict[tuple[int, int], tuple[float, float, str] | None] = {}
        self._reliability: dict[tuple[int, int], float] = {}
        self.hosts, self.machines = self._build_hosts(
            salt, n_hosts if n_hosts is not None else max(4, size // 5 + 3), id_offset)

    def _build_hosts(self, salt: int, n_hosts: int,
                     id_offset: int) -> tuple[list[Host], list[Machine]]:
        rng = random.Random(mix(self.seed, salt))
        host_ids = [id_offset + i for i in rng.sample(range(1, 400_000), n_hosts)]
        hosts, machines = [], []
        machine_ids = iter(id_offset + i for i in rng.sample(range(1_000, 90_000), n_hosts * 4))
        weights = [g.weight for g in GPU_MODELS]
        for hi, host_id in enumerate(host_ids):
            flaky = rng.random() < 0.3
            hosts.append(Host(host_id=host_id,
                              flakiness=rng.uniform(0.15, 0.5) if flaky else rng.uniform(0.0, 0.04),
                              reliability_base=rng.uniform(0.86, 0.95) if flaky
                              else rng.uniform(0.97, 0.9995)))
            city, cc = rng.choice(LOCATIONS)
            hosting_type = rng.choice((0, 1, 1))
            verification = rng.choice(("verified", "verified", "verified", "unverified"))
            for _ in range(rng.choice((1, 1, 2, 3, 4))):
                machines.append(self._new_machine(rng, next(machine_ids), hi, host_id,
                                                  rng.choices(GPU_MODELS, weights)[0],
                                                  f"{city}, {cc}", cc, hosting_type,
                                                  verification))
        return hosts, machines

    @staticmethod
    def _new_machine(rng: random.Random, machine_id: int, hi: int, host_id: int, gpu: GpuModel,
                     geolocation: str, country_code: str, hosting_type: int,
                     verification: str) -> Machine:
        max_gpus = rng.choice((1, 2, 4, 8, 8))
        cores = rng.choice((16, 32, 64, 128))
        cuda = rng.choice((12.2, 12.4, 12.6, 12.8))
        static = {
            "host_id": host_id, "geolocation": geolocation, "country_code": country_code,
            "hosting_type": hosting_type, "verification": verification,
            "cpu_arch": "amd64", "cpu_cores": cores, "cpu_name": rng.choice(CPU_NAMES),
            "cpu_ram": cores * rng.choice((4096, 8192)) - rng.randrange(0, 2000),
            "mobo_name": rng.choice(MOBOS), "disk_name": rng.choice(DISKS),
            "disk_bw": round(rng.uniform(400, 6500), 2), "pci_gen": rng.choice((3, 4, 4, 5)),
            "pcie_bw": round(rng.uniform(10, 52), 1), "gpu_lanes": rng.choice((8, 16)),
            "gpu_arch": "nvidia", "gpu_mem_bw": gpu.mem_bw, "compute_cap": gpu.compute_cap,
            "bw_nvlink": rng.choice((0.0, 0.0, 112.5)) if max_gpus > 1 else 0.0,
            "public_ipaddr": f"{rng.randrange(23, 220)}.{rng.randrange(256)}."
                             f"{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "static_ip": rng.random() < 0.6, "os_version": rng.choice((20.04, 22.04, 22.04)),
            "driver_version": rng.choice(("535.183.01", "550.127.05", "560.35.03")),
            "cuda_max_good": cuda, "has_avx": 1, "gpu_display_active": False,
            "direct_port_count": rng.choice((12, 50, 100, 1001)),
            "inet_up": round(rng.uniform(80, 6000), 1),
            "inet_down": round(rng.uniform(200, 9000), 1),
            "ssh_idx": str(rng.randrange(1, 40)), "machine_dir_ssh_port": rng.randrange(2000,
                                                                                        60000),
        }
        return Machine(machine_id=machine_id, host_index=hi, gpu=gpu, max_gpus=max_gpus,
                       static=static,
                       price_per_gpu=round(rng.uniform(gpu.price_low, gpu.price_high), 4),
                       storage_cost=round(rng.uniform(0.05, 0.3), 6),
                       inet_up_cost=round(rng.uniform(0.0, 0.02), 4),
                       inet_down_cost=round(rng.uniform(0.0, 0.02), 4))

    def outage(self, hi: int, day: int) -> tuple[float, float, str] | None:
        """(start, end, kind) of host `hi`'s outage starting on UTC day `day`, if any."""
        key = (hi, day)
        if key in self._outages:
            return self._outages[key]
        out = None
        if unit(self.seed, Stream.OUTAGE, hi, day) < self.hosts[hi].flakiness:
            draw = unit(self.seed, Stream.OUTAGE, hi, day, 1)
            start = day * DAY_SECONDS + draw * DAY_SECONDS
            # 15 minutes to 10 hours, most around an hour.
            draw = unit(self.seed, Stream.OUTAGE, hi, day, 2)
            hours = math.exp(math.log(0.25) + draw * math.log(40))
            kind = "offline" if unit(self.seed, Stream.OUTAGE, hi, day, 3) < 0.7 else "unknown"
            out = (start, start + hours * 3600.0, kind)
        self._outages[key] = out
        return out

    def outage_at(self, hi: int, te: float) -> str | None:
        """`offline`/`unknown` while host `hi` is in an outage at `te`, else None."""
        day = math.floor(te / DAY_SECONDS)
        for d in (day, day - 1):
            o = self.outage(hi, d)
            if o is not None and o[0] <= te < o[1]:
                return o[2]
        return None

    def outages_between(self, hi: int, a: float, b: float) -> list[tuple[float, float, str]]:
        out = []
        for d in range(math.floor(a / DAY_SECONDS) - 1, math.floor(b / DAY_SECONDS) + 1):
            o = self.outage(hi, d)
            if o is not None and o[0] < b and o[1] > a:
                out.append((max(a, o[0]), min(b, o[1]), o[2]))
        return out

    def reliability_at(self, hi: int, te: float) -> float:
        """`reliability2` of host `hi`: its base score drifting day by day (interpolated)."""
        x = te / DAY_SECONDS
        d = math.floor(x)
        v = self._day_reliability(hi, d) * (1 - (x - d)) + self._day_reliability(hi, d + 1) * (
            x - d)
        return round(min(max(v, 0.0), 1.0), 7)

    def _day_reliability(self, hi: int, day: int) -> float:
        key = (hi, day)
        value = self._reliability.get(key)
        if value is None:
            u = unit(self.seed, Stream.RELIABILITY, hi, day)
            value = self._reliability[key] = self.hosts[hi].reliability_base - 0.05 * u * u
        return value

