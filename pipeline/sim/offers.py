"""One offer as the search returns it: every field of the spec's example, priced for the
type and the storage asked.

The market (`market`) decides which listings are offered and at what base price; this
module turns a listing and its current run into the record, so the hardware, the place
and the reliability come from the very machine and host the fleet's records use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.sim.hosts import HostPool, Machine
from pipeline.sim.records import pricing

RESERVED_DISCOUNT = 0.2   # what `type: reserved` takes off `dph_total`


@dataclass(frozen=True, slots=True)
class Listing:
    """One (machine, num_gpus) a host offers, with what does not change over time."""

    index: int
    machine: Machine
    num_gpus: int
    pool: HostPool
    steady: bool
    position: float        # where in its GPU model's price band the host prices (0..1)
    verification: str
    disk_space: float      # GB free to rent with this offer
    cycle_hours: int
    phase_hours: int
    tied: bool = False


@dataclass(frozen=True, slots=True)
class Run:
    """One stretch during which a listing is offered: its id and its price."""

    offer_id: int
    start: float           # epoch seconds it was listed
    dph_base: float
    end_date: float        # the host's contract end: `duration` counts down to it


def offer_record(listing: Listing, run: Run, te: float, offer_type: str,
                 allocated_storage: float, min_bid: float, rentable: bool) -> dict[str, Any]:
    """The offer of `listing` during `run` at `te`, priced for `offer_type` at
    `allocated_storage` GB: `dph_total` is the type's GPU price (`dph_base` on demand,
    `min_bid` interruptible) plus storage_cost x GB / 720."""
    machine, n = listing.machine, listing.num_gpus
    gpu, static = machine.gpu, machine.static
    frac = n / machine.max_gpus
    gpu_price = min_bid if offer_type == "bid" else run.dph_base
    storage_hour = machine.storage_cost * allocated_storage / 720.0
    dph_total = gpu_price + storage_hour
    discount = RESERVED_DISCOUNT if offer_type == "reserved" else 0.0
    reliability = listing.pool.reliability_at(machine.host_index, te)
    dlperf = round(gpu.dlperf * n, 6)
    flops = round(gpu.tflops * n, 5)
    return {
        "id": run.offer_id, "ask_contract_id": run.offer_id,
        "bundle_id": run.offer_id * 7 + 3, "bundled_results": None,
        "machine_id": machine.machine_id, "host_id": static["host_id"],
        "gpu_name": gpu.name, "num_gpus": n, "gpu_frac": frac,
        "gpu_ids": [machine.machine_id * 10 + i for i in range(n)],
        "gpu_ram": gpu.ram_mb, "gpu_total_ram": gpu.ram_mb * n, "gpu_arch": "nvidia",
        "gpu_mem_bw": gpu.mem_bw, "compute_cap": gpu.compute_cap, "gpu_lanes": static["gpu_lanes"],
        "gpu_max_power": 450 if gpu.ram_mb < 40_000 else 700, "gpu_max_temp": 83,
        "gpu_display_active": False, "bw_nvlink": static["bw_nvlink"],
        "cpu_arch": static["cpu_arch"], "cpu_name": static["cpu_name"],
        "cpu_cores": static["cpu_cores"], "cpu_cores_effective": static["cpu_cores"] * frac,
        "cpu_ghz": round(2.0 + (machine.machine_id % 17) / 10, 2),
        "cpu_ram": round(static["cpu_ram"] * frac), "has_avx": static["has_avx"],
        "mobo_name": static["mobo_name"], "pci_gen": static["pci_gen"],
        "pcie_bw": static["pcie_bw"], "disk_name": static["disk_name"],
        "disk_bw": static["disk_bw"], "disk_space": listing.disk_space,
        "cuda_max_good": static["cuda_max_good"], "driver_version": static["driver_version"],
        "driver_vers": _driver_number(static["driver_version"]),
        "os_version": str(static["os_version"]), "direct_port_count": static["direct_port_count"],
        "public_ipaddr": static["public_ipaddr"], "static_ip": static["static_ip"],
        "hostname": None, "inet_up": static["inet_up"], "inet_down": static["inet_down"],
        "inet_up_cost": machine.inet_up_cost, "inet_down_cost": machine.inet_down_cost,
        "internet_up_cost_per_tb": round(machine.inet_up_cost * 1024, 4),
        "internet_down_cost_per_tb": round(machine.inet_down_cost * 1024, 4),
        "geolocation": static["geolocation"], "geolocode": _geolocode(static["country_code"]),
        "hosting_type": static["hosting_type"], "external": None,
        "verification": listing.verification,
        "vericode": 1 if listing.verification == "verified" else 0,
        "is_vm_deverified": False, "vms_enabled": False, "resource_type": "gpu",
        "cluster_id": None, "logo": "/static/logos/vastai_small2.png", "webpage": None,
        "reliability": reliability, "reliability2": reliability,
        "reliability_mult": round(reliability ** 4, 6), "expected_reliability": reliability,
        "rentable": rentable, "rented": False, "is_bid": offer_type == "bid",
        "start_date": run.start, "end_date": run.end_date, "duration": run.end_date - te,
        "time_remaining": "", "time_remaining_isbid": "",
        "dph_base": run.dph_base, "min_bid": min_bid, "dph_total": dph_total,
        "dph_total_adj": dph_total, "storage_cost": machine.storage_cost,
        "storage_total_cost": storage_hour, "vram_costperhour": gpu_price / (gpu.ram_mb * n),
        "credit_discount_max": 0.4, "discount_rate": discount,
        "discounted_hourly": dph_total * discount,
        "discounted_dph_total": dph_total * (1 - discount),
        "dlperf": dlperf, "total_flops": flops,
        "dlperf_per_dphtotal": dlperf / dph_total, "flops_per_dphtotal": flops / dph_total,
        "score": dlperf * reliability / max(dph_total, 1e-9) ** 0.5,
        "search": pricing(gpu_price, storage_hour, 0.0),
        "instance": pricing(gpu_price, storage_hour, 0.0),
        "avail_vol_ask_id": None, "avail_vol_dph": None, "avail_vol_size": None,
        "nw_disk_min_bw": None, "nw_disk_max_bw": None, "nw_disk_avg_bw": None, "rn": 0,
    }


def _driver_number(version: str) -> int:
    """`535.183.01` -> 535183001, the integer form the search also returns."""
    parts = [int(p) for p in version.split(".")] + [0, 0]
    return parts[0] * 1_000_000 + parts[1] * 1000 + parts[2]


def _geolocode(country_code: str) -> int:
    return (ord(country_code[0]) - 64) * 100 + (ord(country_code[1]) - 64)
