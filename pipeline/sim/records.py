"""The instance record as the API serves it: every documented key, with consistent money
fields, and the type drift, new keys and broken records the pipeline must survive.

A record is built in two steps. The static part (what a contract keeps from its birth)
is drawn once per instance; the clean record adds what the moment decides (status,
utilisation, prices, reliability). The served record is the clean one with this moment's
drift applied: the simulator filters and orders on the clean record, as the real service
does on its own typed columns, and sends the served one.
"""

from __future__ import annotations

import random
from typing import Any

from pipeline.sim.catalogue import IMAGES, LABELS, SECRET_ENV_NAMES, TEMPLATES
from pipeline.sim.hosts import HostPool, Machine
from pipeline.sim.lifecycle import (
    DISK_UNBILLED_STATUSES,
    GPU_BILLED_STATUSES,
    NO_HOST_OVERLAY,
    PHASES,
    Lifecycle,
)
from pipeline.sim.seeded import DAY_SECONDS, MASK64, Stream, mix, splitmix, unit

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


NEW_FIELDS: tuple[tuple[str, Any], ...] = (
    ("gpu_clock_mhz", 1800), ("vm_flavor", "std"), ("rental_region", "eu-north"),
    ("nvlink_topology", {"links": 4}),
)
# Numeric fields the drift may send as numeric strings ("12.4").
STRINGIFIABLE_FIELDS = ("gpu_temp", "cpu_util", "disk_space", "inet_up", "inet_down",
                        "dlperf", "reliability2", "cpu_ram")
DRIFT_KINDS = ("gpu_util_percent", "cuda_string", "hosting_type_string", "os_version",
               "ports_object", "image_args_string", "numeric_string")


def static_record(rng: random.Random, instance_id: int, birth: float, machine: Machine,
                  num_gpus: int, is_bid: bool, credit_balance: float) -> dict[str, Any]:
    """The keys a contract keeps for its whole life (drawn once, at its birth)."""
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
        "credit_balance": credit_balance, "credit_discount_max": 0.4,
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


def effective_status(lc: Lifecycle, te: float,
                     hosts: HostPool) -> tuple[str, float, str | None]:
    """(phase, phase start, actual_status) at `te`, host outages overlaid."""
    phase, since = lc.phase_at(te)
    actual = PHASES[phase][0]
    if phase not in NO_HOST_OVERLAY:
        outage = hosts.outage_at(lc.machine.host_index, te)
        if outage is not None:
            actual = outage
    return phase, since, actual


def clean_record(lc: Lifecycle, te: float, seed: int, hosts: HostPool) -> dict[str, Any]:
    """The record of `lc` at `te` with no drift: the server's own view of it."""
    rec = dict(lc.static)
    rec["extra_env"] = [list(pair) for pair in lc.static["extra_env"]]
    rec["image_args"] = list(lc.static["image_args"])
    rec["ports"] = list(lc.static["ports"])
    rec["volume_info"] = []
    phase, since, actual = effective_status(lc, te, hosts)
    _, intended, cur_state, next_state = PHASES[phase]
    gpu_billed = actual in GPU_BILLED_STATUSES
    active = actual in ("running", "loading")
    bucket = int(te // 600)
    noise = unit(seed, Stream.NOISE, lc.id, bucket)
    dph_base = lc.price_at(te, seed)
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
        "reliability2": hosts.reliability_at(lc.machine.host_index, te),
        "search": pricing(dph_base, disk_hour, dph_base * lc.discount),
        "instance": pricing(inst_gpu, inst_disk, inst_gpu * lc.discount),
        "credit_discount": lc.discount or None,
        "inet_down_billed": round(hours_alive * lc.down_gb_per_hour, 3),
        "inet_up_billed": round(hours_alive * lc.up_gb_per_hour, 3),
    })
    return rec


def served_record(lc: Lifecycle, clean: dict[str, Any], te: float, seed: int,
                  rates: tuple[float, float, float]) -> Any:
    """The clean record with this moment's drift, new fields or breakage applied.

    `rates` are (drift, new field, broken) rates, each within 0..1.
    """
    drift_rate, new_field_rate, broken_rate = rates
    if not (drift_rate or new_field_rate or broken_rate):
        return clean
    base = mix(seed, Stream.DRIFT, lc.id, int(te // 60))

    def draw(i: int) -> float:
        return splitmix((base + i * 0x9E3779B97F4A7C15) & MASK64) / 18446744073709551616.0

    if broken_rate and draw(100) < broken_rate:
        return _broken(clean, draw(101))
    rec = clean
    if drift_rate:
        chosen = [kind for i, kind in enumerate(DRIFT_KINDS) if draw(i) < drift_rate]
        if chosen:
            rec = dict(clean)
            for kind in chosen:
                _apply_drift(rec, kind, draw(50))
    if new_field_rate and draw(200) < new_field_rate:
        rec = dict(rec) if rec is clean else rec
        for name, value in NEW_FIELDS[: int(draw(201) * len(NEW_FIELDS)) + 1]:
            rec[name] = value
    return rec


def _secret_value(rng: random.Random, name: str) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    if name == "HF_TOKEN":
        return "hf_" + "".join(rng.choice(alphabet) for _ in range(34))
    if name == "WANDB_API_KEY":
        return f"{rng.getrandbits(160):040x}"
    if name == "OPENAI_API_KEY":
        return "sk-proj-" + "".join(rng.choice(alphabet) for _ in range(40))
    return "".join(rng.choice(alphabet) for _ in range(40))


def pricing(gpu: float, disk: float, discount: float) -> dict[str, float]:
    """The `search` / `instance` price breakdown of a record or an offer ($/h)."""
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
