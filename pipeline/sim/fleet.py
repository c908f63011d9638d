"""A deterministic model of one Vast.ai account's fleet of GPU instances over time.

The simulator serves this model over HTTP so the demo and the tests can exercise the
whole pipeline without a Vast.ai account. Everything is a pure function of the
constructor arguments and the moment asked about: instances arrive in hourly slots (a
seeded Poisson count per slot), each gets a seeded lifecycle (provisioning, loading,
running, user stops and restarts, reboots, exits, freezes, destroy), hosts suffer seeded
outages (`offline`/`unknown`) and drift in `reliability2`, bid prices step every few
hours. Nothing depends on the order of calls, so two processes (the simulator and a
test) always agree on what the fleet looked like at a given moment.

Ids grow with arrival time and are never reused; a destroyed instance disappears.
Records carry every key of the documented example plus the extra keys the reference
lists, with consistent money fields; the documented type drift, unknown new keys and
broken records appear at configurable rates for robustness tests.
"""

from __future__ import annotations

import math
import random
import threading
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

DEFAULT_ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)
SLOT_SECONDS = 3600.0
DAY_SECONDS = 86400.0
MAX_LIFETIME_SECONDS = 30 * DAY_SECONDS
BASE_ID = 30_000_000
_MAX_LOOKUP_SLOTS = 10 * 366 * 24  # ids are looked up within ten years of the origin
_MASK64 = (1 << 64) - 1

# Salts that keep the independent random streams apart.
_HOSTS, _ARRIVALS, _LIFE, _OUTAGE, _RELIABILITY, _BID, _NOISE, _DRIFT, _VOLUME = range(1, 10)
# Storage volumes (contracts of type `volume`): ids apart from instance ids, a few per fleet.
VOLUME_BASE_ID = 4_000_000
DEFAULT_VOLUMES = 2

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
_NO_HOST_OVERLAY = frozenset({"provisioning", "unloading"})
GPU_BILLED_STATUSES = frozenset({"running", "frozen"})
DISK_UNBILLED_STATUSES = frozenset({"offline"})


@dataclass(frozen=True, slots=True)
class GpuModel:
    """A GPU model with its realistic per-GPU price band and performance figures."""

    name: str
    price_low: float
    price_high: float
    ram_mb: int
    compute_cap: int
    dlperf: float
    tflops: float
    mem_bw: float
    weight: float


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel("RTX 3090", 0.20, 0.35, 24576, 860, 20.1, 35.6, 936.2, 0.24),
    GpuModel("RTX 4090", 0.35, 0.70, 24564, 890, 41.5, 82.6, 1008.0, 0.30),
    GpuModel("RTX A5000", 0.25, 0.40, 24564, 860, 22.2, 27.5, 768.0, 0.10),
    GpuModel("A100 SXM4", 1.10, 1.80, 81920, 800, 54.3, 19.5, 2039.0, 0.14),
    GpuModel("H100 SXM", 1.80, 3.00, 81559, 900, 96.2, 66.9, 3352.0, 0.12),
    GpuModel("L40S", 0.60, 1.00, 46068, 890, 45.0, 91.6, 864.0, 0.10),
)

LOCATIONS: tuple[tuple[str, str], ...] = (
    ("Washington", "US"), ("Texas", "US"), ("California", "US"), ("Quebec", "CA"),
    ("Frankfurt", "DE"), ("Oslo", "NO"), ("Helsinki", "FI"), ("Warsaw", "PL"),
    ("Tokyo", "JP"), ("Taipei", "TW"), ("Sao Paulo", "BR"), ("Amsterdam", "NL"),
)
LABELS: tuple[str | None, ...] = (
    "llm-finetune", "sd-inference", "research-ablation", "batch-embeddings", "dev-box",
    "eval-harness", None, None, None,
)
IMAGES: tuple[str, ...] = (
    "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-devel", "vastai/base-image:cuda-12.4.1-auto",
    "nvidia/cuda:12.2.0-devel-ubuntu22.04", "tensorflow/tensorflow:latest-gpu",
    "vllm/vllm-openai:v0.6.3", "ghcr.io/huggingface/text-generation-inference:2.4",
)
TEMPLATES: tuple[tuple[int, str, str], ...] = (
    (204, "PyTorch (Vast)", "4b3c1d2e0f6a7b8c9d0e1f2a3b4c5d6e"),
    (311, "vLLM", "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"),
    (418, "Stable Diffusion WebUI", "1f2e3d4c5b6a79881726354453627180"),
)
CPU_NAMES = ("AMD EPYC 7543 32-Core Processor", "Xeon\u00ae Silver 4110", "AMD Ryzen 9 7950X",
             "Xeon\u00ae Gold 6338", "AMD EPYC 9354 32-Core Processor")
MOBOS = ("ROMED8-2T", "S7109GM2NR", "X13DEG-OAD", "PRO WS WRX80E-SAGE SE", "H12DSG-O-CPU")
DISKS = ("Samsung SSD 980 PRO", "Samsung SSD 860", "WD_BLACK SN850X", "Micron 7450")
SECRET_ENV_NAMES = ("HF_TOKEN", "WANDB_API_KEY", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY")
NEW_FIELDS: tuple[tuple[str, Any], ...] = (
    ("gpu_clock_mhz", 1800), ("vm_flavor", "std"), ("rental_region", "eu-north"),
    ("nvlink_topology", {"links": 4}),
)
# Numeric fields the drift may send as numeric strings ("12.4").
STRINGIFIABLE_FIELDS = ("gpu_temp", "cpu_util", "disk_space", "inet_up", "inet_down",
                        "dlperf", "reliability2", "cpu_ram")
DRIFT_KINDS = ("gpu_util_percent", "cuda_string", "hosting_type_string", "os_version",
               "ports_object", "image_args_string", "numeric_string")


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix(*parts: int) -> int:
    """A 64-bit hash of integers, stable across processes (unlike `hash()`)."""
    h = 0x243F6A8885A308D3
    for part in parts:
        h = _splitmix(h ^ (part & _MASK64))
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


def _poisson(lam: float, rng: random.Random) -> int:
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _sample_lifetime(rng: random.Random) -> float:
    """Short jobs (hours), medium runs (days) and long-lived boxes (weeks), capped."""
    r = rng.random()
    if r < 0.35:
        median, sigma = 3 * 3600.0, 0.8
    elif r < 0.8:
        median, sigma = 2 * DAY_SECONDS, 0.7
    else:
        median, sigma = 10 * DAY_SECONDS, 0.5
    return min(max(rng.lognormvariate(math.log(median), sigma), 1200.0), MAX_LIFETIME_SECONDS)


def _mean_lifetime() -> float:
    rng = random.Random(20260101)
    n = 20000
    return sum(_sample_lifetime(rng) for _ in range(n)) / n


# `_mean_lifetime()`, precomputed so importing the module draws nothing (a test checks it).
MEAN_LIFETIME_SECONDS = 298520.93994125887


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
        factor = 0.75 + 0.5 * unit(seed, _BID, self.id, step)
        return round(self.base_price * factor, 4)

    @property
    def storage_total_cost(self) -> float:
        """$/hour of this instance's disk, as stored on its record."""
        return self.static["storage_total_cost"]


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


class FleetModel:
    """A seeded account fleet: `records_at(t)` is what the API would list at moment `t`."""

    def __init__(self, seed: int = 0, size: int = 40, *, drift_rate: float = 0.0,
                 new_field_rate: float = 0.0, broken_rate: float = 0.0,
                 origin: datetime = DEFAULT_ORIGIN, volumes: int = DEFAULT_VOLUMES) -> None:
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
        self._outages: dict[tuple[int, int], tuple[float, float, str] | None] = {}
        self._reliability: dict[tuple[int, int], float] = {}
        self.credit_balance = round(200 + 4800 * unit(seed, 99), 2)
        self.hosts, self.machines = self._build_hosts()
        self.volumes = tuple(self._new_volume(i) for i in range(volumes))

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
            charge = self._charge(lc, a, b)
            if charge is not None:
                out.append(charge)
        return out

    def volume_charges(self, start: datetime | float, end: datetime | float) -> list[Charge]:
        """Per-volume billed charges over [start, end), by id: disk every second it exists."""
        a, b = to_epoch(start), to_epoch(end)
        out = []
        for vol in self.volumes:
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

    def _new_volume(self, index: int) -> Volume:
        rng = random.Random(mix(self.seed, _VOLUME, index))
        return Volume(id=VOLUME_BASE_ID + (self.seed % 10_000) * 100 + index,
                      label=f"datasets-{index}", size_gb=rng.choice((100, 250, 500, 1000)),
                      price_gb_month=round(rng.uniform(0.05, 0.2), 4),
                      birth=self._origin_epoch + index * 3 * DAY_SECONDS)

    # ---- arrivals and ids ------------------------------------------------------------

    def _count(self, k: int) -> int:
        n = self._counts.get(k)
        if n is None:
            n = _poisson(self._arrivals_per_slot, random.Random(mix(self.seed, _ARRIVALS, k)))
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
                rng = random.Random(mix(self.seed, _ARRIVALS, k, 1))
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

    # ---- hosts, outages, reliability --------------------------------------------------

    def _build_hosts(self) -> tuple[list[Host], list[Machine]]:
        rng = random.Random(mix(self.seed, _HOSTS))
        n_hosts = max(4, self.size // 5 + 3)
        host_ids = rng.sample(range(1, 400_000), n_hosts)
        hosts, machines = [], []
        machine_ids = iter(rng.sample(range(1_000, 90_000), n_hosts * 4))
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

    def _outage(self, hi: int, day: int) -> tuple[float, float, str] | None:
        key = (hi, day)
        if key in self._outages:
            return self._outages[key]
        out = None
        if unit(self.seed, _OUTAGE, hi, day) < self.hosts[hi].flakiness:
            start = day * DAY_SECONDS + unit(self.seed, _OUTAGE, hi, day, 1) * DAY_SECONDS
            # 15 minutes to 10 hours, most around an hour.
            hours = math.exp(math.log(0.25) + unit(self.seed, _OUTAGE, hi, day, 2) * math.log(40))
            kind = "offline" if unit(self.seed, _OUTAGE, hi, day, 3) < 0.7 else "unknown"
            out = (start, start + hours * 3600.0, kind)
        self._outages[key] = out
        return out

    def outage_at(self, hi: int, te: float) -> str | None:
        """`offline`/`unknown` while host `hi` is in an outage at `te`, else None."""
        day = math.floor(te / DAY_SECONDS)
        for d in (day, day - 1):
            o = self._outage(hi, d)
            if o is not None and o[0] <= te < o[1]:
                return o[2]
        return None

    def _outages_between(self, hi: int, a: float, b: float) -> list[tuple[float, float, str]]:
        out = []
        for d in range(math.floor(a / DAY_SECONDS) - 1, math.floor(b / DAY_SECONDS) + 1):
            o = self._outage(hi, d)
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
            u = unit(self.seed, _RELIABILITY, hi, day)
            value = self._reliability[key] = self.hosts[hi].reliability_base - 0.05 * u * u
        return value

    # ---- lifecycles -------------------------------------------------------------------

    def _new_lifecycle(self, instance_id: int, birth: float) -> Lifecycle:
        rng = random.Random(mix(self.seed, _LIFE, instance_id))
        death = birth + _sample_lifetime(rng)
        machine = self.machines[rng.randrange(len(self.machines))]
        num_gpus = rng.choice([n for n in (1, 1, 2, 4, 8) if n <= machine.max_gpus])
        is_bid = rng.random() < 0.2
        starts, kinds = _phases(rng, birth, death)
        static = self._static_record(rng, instance_id, birth, machine, num_gpus, is_bid)
        discount = rng.choice((0.0, 0.0, 0.0, 0.1, 0.2, 0.3))
        return Lifecycle(
            id=instance_id, birth=birth, death=death, machine=machine, num_gpus=num_gpus,
            is_bid=is_bid, base_price=round(machine.price_per_gpu * num_gpus, 4),
            price_step=rng.uniform(2, 6) * 3600.0, discount=discount,
            idle=rng.random() < 0.2, util_base=rng.uniform(0.45, 0.98),
            down_gb_per_hour=round(rng.uniform(0.01, 8.0), 3),
            up_gb_per_hour=round(rng.uniform(0.01, 2.0), 3),
            phase_starts=starts, phase_kinds=kinds, static=static)

    def _static_record(self, rng: random.Random, instance_id: int, birth: float,
                       machine: Machine, num_gpus: int, is_bid: bool) -> dict[str, Any]:
        gpu = machine.gpu
        template = rng.choice((*TEMPLATES, None, None))
        image = rng.choice(IMAGES)
        disk_space = float(rng.choice((10, 16, 32, 50, 64, 100, 200, 500)))
        env: list[list[str]] = [["-p 8080:8080", "1"]] if rng.random() < 0.3 else []
        for name in rng.sample(SECRET_ENV_NAMES, rng.choice((0, 1, 1, 2, 3))):
            env.append([name, _secret_value(rng, name)])
        ssh_port = rng.randrange(10000, 60000)
        port_start = rng.choice((-1, rng.randrange(20000, 60000)))
        record: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
        record.update(machine.static)
        record.update({
            "id": instance_id, "label": rng.choice(LABELS),
            "template_id": template[0] if template else None,
            "template_name": template[1] if template else None,
            "template_hash_id": template[2] if template else None,
            "image_uuid": image, "image_args": rng.choice(([], [], ["--port", "8080"])),
            "image_runtype": rng.choice(("ssh", "ssh", "jupyter", "args")), "extra_env": env,
            "onstart": rng.choice((None, "env >> /etc/environment; bash /root/onstart.sh")),
            "jupyter_token": f"{rng.getrandbits(256):064x}",
            "local_ipaddrs": f"10.{rng.randrange(256)}.{rng.randrange(256)}."
                             f"{rng.randrange(1, 255)} 172.17.0.1 \n",
            "ssh_host": f"ssh{rng.randrange(1, 9)}.vast.ai", "ssh_port": ssh_port,
            "machine_id": machine.machine_id, "bundle_id": rng.randrange(100_000, 9_000_000),
            "start_date": birth, "end_date": float(int(birth + rng.uniform(30, 180) *
                                                       DAY_SECONDS)),
            "cpu_cores_effective": float(machine.static["cpu_cores"] * num_gpus
                                         / machine.max_gpus),
            "gpu_name": gpu.name, "gpu_totalram": gpu.ram_mb, "gpu_ram": gpu.ram_mb,
            "gpu_frac": num_gpus / machine.max_gpus, "disk_space": disk_space,
            "direct_port_start": port_start,
            "direct_port_end": port_start + 11 if port_start > 0 else -1,
            "ports": [8080, 22] if rng.random() < 0.5 else [22],
            "rentable": True, "min_bid": round(machine.price_per_gpu * num_gpus * 0.6, 4),
            "is_bid": is_bid, "dlperf": round(gpu.dlperf * num_gpus, 6),
            "total_flops": round(gpu.tflops * num_gpus, 5), "num_gpus": num_gpus,
            "logo": "/static/logos/vastai_small2.png", "webpage": None,
            "storage_cost": machine.storage_cost,
            "storage_total_cost": machine.storage_cost * disk_space / 720.0,
            "credit_balance": self.credit_balance, "credit_discount_max": 0.4,
            "client_run_time": 1.1, "host_run_time": 2592000.0, "external": False,
            "time_remaining": "", "time_remaining_isbid": "",
            "inet_up_cost": machine.inet_up_cost, "inet_down_cost": machine.inet_down_cost,
            "internet_up_cost_per_tb": round(machine.inet_up_cost * 1024, 4),
            "internet_down_cost_per_tb": round(machine.inet_down_cost * 1024, 4),
            "volume_info": [],
            "mem_limit": round(machine.static["cpu_ram"] / 1024 * num_gpus / machine.max_gpus,
                               3),
        })
        return record

    # ---- records -----------------------------------------------------------------------

    def effective_status(self, lc: Lifecycle, te: float) -> tuple[str, float, str | None]:
        """(phase, phase start, actual_status) at `te`, host outages overlaid."""
        phase, since = lc.phase_at(te)
        actual = PHASES[phase][0]
        if phase not in _NO_HOST_OVERLAY:
            outage = self.outage_at(lc.machine.host_index, te)
            if outage is not None:
                actual = outage
        return phase, since, actual

    def _clean_record(self, lc: Lifecycle, te: float) -> dict[str, Any]:
        rec = dict(lc.static)
        rec["extra_env"] = [list(pair) for pair in lc.static["extra_env"]]
        rec["image_args"] = list(lc.static["image_args"])
        rec["ports"] = list(lc.static["ports"])
        rec["volume_info"] = []
        phase, since, actual = self.effective_status(lc, te)
        _, intended, cur_state, next_state = PHASES[phase]
        gpu_billed = actual in GPU_BILLED_STATUSES
        active = actual in ("running", "loading")
        bucket = int(te // 600)
        noise = unit(self.seed, _NOISE, lc.id, bucket)
        dph_base = lc.price_at(te, self.seed)
        disk_hour = lc.storage_total_cost
        dph_total = dph_base + disk_hour
        inst_gpu = dph_base if gpu_billed else 0
        inst_disk = 0 if actual in DISK_UNBILLED_STATUSES else disk_hour
        hours_alive = (te - lc.birth) / 3600.0
        if actual == "running":
            util = (0.01 * noise) if lc.idle else min(0.99, lc.util_base + 0.1 * (noise - 0.5))
        else:
            util = 0.0 if actual in ("loading", "stopped", "exited", "frozen") else None
        rec.update({
            "actual_status": actual, "intended_status": intended, "cur_state": cur_state,
            "next_state": next_state, "status_msg": _status_msg(actual, rec["image_uuid"]),
            "uptime_mins": round((te - since) / 60.0, 2) if actual == "running" else None,
            "duration": rec["end_date"] - te,
            "cpu_util": round(0.02 + 0.6 * noise, 3) if active else 0.0,
            "mem_usage": round(rec["mem_limit"] * (0.05 + 0.5 * noise), 3) if active else None,
            "vmem_usage": round(lc.machine.gpu.ram_mb / 1024 * util * lc.num_gpus, 3)
            if util is not None else None,
            "gpu_util": None if util is None else round(util, 4),
            "gpu_temp": None if util is None else round(32 + 50 * util + 3 * noise, 1),
            "disk_usage": round(rec["disk_space"] * min(0.95, 0.1 + hours_alive / 500), 2),
            "disk_util": round(min(0.95, 0.1 + hours_alive / 500), 4),
            "dph_base": dph_base, "dph_total": dph_total,
            "dlperf_per_dphtotal": rec["dlperf"] / dph_total,
            "flops_per_dphtotal": rec["total_flops"] / dph_total,
            "score": rec["dlperf"] * 0.99 / max(dph_total, 1e-9) ** 0.5,
            "vram_costperhour": dph_base / (lc.machine.gpu.ram_mb * lc.num_gpus),
            "reliability2": self.reliability_at(lc.machine.host_index, te),
            "search": _pricing(dph_base, disk_hour, dph_base * lc.discount),
            "instance": _pricing(inst_gpu, inst_disk, inst_gpu * lc.discount),
            "credit_discount": lc.discount or None,
            "inet_down_billed": round(hours_alive * lc.down_gb_per_hour, 3),
            "inet_up_billed": round(hours_alive * lc.up_gb_per_hour, 3),
        })
        return rec

    def _served(self, lc: Lifecycle, clean: dict[str, Any], te: float) -> Any:
        """The clean record with this moment's drift, new fields or breakage applied."""
        if not (self.drift_rate or self.new_field_rate or self.broken_rate):
            return clean
        base = mix(self.seed, _DRIFT, lc.id, int(te // 60))

        def draw(i: int) -> float:
            return _splitmix((base + i * 0x9E3779B97F4A7C15) & _MASK64) / 18446744073709551616.0

        if self.broken_rate and draw(100) < self.broken_rate:
            return _broken(clean, draw(101))
        rec = clean
        if self.drift_rate:
            chosen = [kind for i, kind in enumerate(DRIFT_KINDS) if draw(i) < self.drift_rate]
            if chosen:
                rec = dict(clean)
                for kind in chosen:
                    _apply_drift(rec, kind, draw(50))
        if self.new_field_rate and draw(200) < self.new_field_rate:
            rec = dict(rec) if rec is clean else rec
            for name, value in NEW_FIELDS[: int(draw(201) * len(NEW_FIELDS)) + 1]:
                rec[name] = value
        return rec

    # ---- billing -----------------------------------------------------------------------

    def _charge(self, lc: Lifecycle, a: float, b: float) -> Charge | None:
        a, b = max(a, lc.birth), min(b, lc.death)
        if a >= b:
            return None
        gpu_s = gpu_amount = disk_s = 0.0
        hi = lc.machine.host_index
        for s, e, phase in lc.phases_between(a, b):
            for s2, e2, actual in self._overlay(hi, s, e, phase):
                if actual in GPU_BILLED_STATUSES:
                    gpu_s += e2 - s2
                    gpu_amount += self._price_integral(lc, s2, e2)
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

    def _overlay(self, hi: int, s: float, e: float,
                 phase: str) -> Iterator[tuple[float, float, str | None]]:
        """Split a phase interval by host outages into (start, end, actual_status)."""
        base = PHASES[phase][0]
        if phase in _NO_HOST_OVERLAY:
            yield s, e, base
            return
        # Outages may overlap (one from the day before can run into today's), so the status
        # of each piece between consecutive boundaries is decided by `outage_at`, the same
        # rule the served records use: billing and records agree by construction.
        bounds = {s, e}
        for os_, oe, _ in self._outages_between(hi, s, e):
            bounds.update((os_, oe))
        points = sorted(bounds)
        start, status = s, base
        for lo, hi_ in pairwise(points):
            piece = self.outage_at(hi, (lo + hi_) / 2) or base
            if lo > start and piece != status:
                yield start, lo, status
                start = lo
            status = piece
        if start < e:
            yield start, e, status

    def _price_integral(self, lc: Lifecycle, s: float, e: float) -> float:
        """$ of GPU time over [s, e): price steps at fixed offsets from birth for bids."""
        if not lc.is_bid:
            return lc.base_price * (e - s) / 3600.0
        total, cursor = 0.0, s
        step = int((s - lc.birth) // lc.price_step)
        while cursor < e:
            end = min(e, lc.birth + (step + 1) * lc.price_step)
            if end > cursor:
                total += lc.price_of_step(step, self.seed) * (end - cursor) / 3600.0
            cursor = max(cursor, end)
            step += 1
        return total


# ---- module helpers ---------------------------------------------------------------------

EXAMPLE_KEYS: tuple[str, ...] = (
    "id", "actual_status", "intended_status", "cur_state", "next_state", "label",
    "template_id", "template_hash_id", "template_name", "image_uuid", "image_args",
    "image_runtype", "extra_env", "onstart", "jupyter_token", "status_msg", "local_ipaddrs",
    "ssh_host", "ssh_idx", "ssh_port", "machine_dir_ssh_port", "machine_id", "bundle_id",
    "start_date", "end_date", "uptime_mins", "duration", "cpu_arch", "cpu_cores",
    "cpu_cores_effective", "cpu_name", "cpu_ram", "cpu_util", "mem_limit", "mem_usage",
    "vmem_usage", "gpu_name", "gpu_arch", "gpu_totalram", "gpu_ram", "gpu_util", "gpu_temp",
    "gpu_frac", "gpu_lanes", "gpu_mem_bw", "bw_nvlink", "disk_name", "disk_space", "disk_bw",
    "disk_util", "disk_usage", "direct_port_count", "direct_port_start", "direct_port_end",
    "ports", "static_ip", "public_ipaddr", "geolocation", "verification", "rentable",
    "host_id", "hosting_type", "min_bid", "is_bid", "dph_base", "dph_total", "dlperf",
    "dlperf_per_dphtotal", "flops_per_dphtotal", "total_flops", "score", "reliability2",
    "os_version", "mobo_name", "pci_gen", "pcie_bw", "num_gpus", "logo", "webpage", "search",
    "instance", "storage_cost", "storage_total_cost", "vram_costperhour", "credit_balance",
    "credit_discount", "credit_discount_max", "client_run_time", "host_run_time", "external",
    "time_remaining", "time_remaining_isbid",
)
EXTRA_KEYS: tuple[str, ...] = (
    "inet_up", "inet_down", "inet_up_cost", "inet_down_cost", "inet_up_billed",
    "inet_down_billed", "internet_up_cost_per_tb", "internet_down_cost_per_tb", "gpu_util",
    "gpu_temp", "cuda_max_good", "driver_version", "compute_cap", "has_avx",
    "gpu_display_active", "bundle_id", "volume_info", "country_code", "template_name",
    "uptime_mins",
)
RECORD_KEYS: tuple[str, ...] = EXAMPLE_KEYS + tuple(k for k in EXTRA_KEYS if k not in EXAMPLE_KEYS)
# Keys the server computes per request rather than storing on the contract: not filterable.
COMPUTED_KEYS: frozenset[str] = frozenset({
    "dph_total", "num_gpus", "search", "instance", "duration", "uptime_mins",
    "dlperf_per_dphtotal", "flops_per_dphtotal", "storage_total_cost", "vram_costperhour",
    "score", "time_remaining", "time_remaining_isbid", "credit_balance", "reliability2",
})


def _phases(rng: random.Random, birth: float,
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


def _secret_value(rng: random.Random, name: str) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    if name == "HF_TOKEN":
        return "hf_" + "".join(rng.choice(alphabet) for _ in range(34))
    if name == "WANDB_API_KEY":
        return f"{rng.getrandbits(160):040x}"
    if name == "OPENAI_API_KEY":
        return "sk-proj-" + "".join(rng.choice(alphabet) for _ in range(40))
    return "".join(rng.choice(alphabet) for _ in range(40))


def _pricing(gpu: float, disk: float, discount: float) -> dict[str, float]:
    total = gpu + disk
    return {"gpuCostPerHour": gpu, "diskHour": disk, "totalHour": total,
            "discountTotalHour": discount, "discountedTotalPerHour": total - discount}


def _status_msg(actual: str | None, image: str) -> str | None:
    if actual == "running":
        return f"success, running {image}/ssh"
    if actual == "loading":
        return f"Pulling image {image}"
    if actual == "exited":
        return "Container exited with code 1"
    if actual in ("offline", "unknown"):
        return "Host not responding"
    return None


def _apply_drift(rec: dict[str, Any], kind: str, u: float) -> None:
    """One documented type drift, in place on a copy of the record."""
    if kind == "gpu_util_percent" and isinstance(rec.get("gpu_util"), float | int):
        rec["gpu_util"] = round(rec["gpu_util"] * 100, 2)
    elif kind == "cuda_string":
        rec["cuda_max_good"] = str(rec["cuda_max_good"])
    elif kind == "hosting_type_string":
        rec["hosting_type"] = str(rec["hosting_type"])
    elif kind == "os_version":
        rec["os_version"] = None if u < 0.5 else str(rec["os_version"])
    elif kind == "ports_object":
        rec["ports"] = {f"{p}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(41000 + p)}]
                        for p in rec["ports"]}
    elif kind == "image_args_string":
        rec["image_args"] = " ".join(rec["image_args"])
    elif kind == "numeric_string":
        name = STRINGIFIABLE_FIELDS[int(u * len(STRINGIFIABLE_FIELDS))]
        if isinstance(rec.get(name), float | int):
            rec[name] = str(rec[name])


def _broken(clean: dict[str, Any], u: float) -> Any:
    """A record the pipeline must quarantine: a non-numeric id, or not an object at all."""
    if u < 0.5:
        rec = dict(clean)
        rec["id"] = f"i-{clean['id']}x"
        return rec
    if u < 0.75:
        return f"instance {clean['id']} unavailable"
    return clean["id"] % 1000
