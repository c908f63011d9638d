"""The schema contract of the market history (`market_offers`, `market_quarantine`,
`market_snapshots`), written from the offer search's raw responses.

The same conventions as the instance history (`pipeline.storage.schema`): documented fields
typed, nested pricing objects as `search__*` / `instance__*`, lists as typed list columns,
drifted types coerced losslessly or quarantined with a reason, unknown keys kept in
`extra_fields`. One row per (snapshot_id, offer_type, id): the same machine appears under
both types, priced differently. Bump `MARKET_SCHEMA_VERSION` when a column changes meaning
or type, so older days are re-derived from the raw zone instead of being misread.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.storage.schema import PRICING_KEYS, PRICING_PARENTS, TIMESTAMP, pricing_column

MARKET_SCHEMA_VERSION = 1
OFFER_TYPES: tuple[str, ...] = ("on-demand", "bid")

# The offer fields the search documents (`../shared/reference/market.md`, the spec's
# example answer), by Parquet type; epoch-second fields become UTC timestamps.
OFFER_FIELDS: dict[str, tuple[str, ...]] = {
    "int": (
        "id", "ask_contract_id", "bundle_id", "machine_id", "host_id", "num_gpus", "cpu_cores",
        "direct_port_count", "gpu_lanes", "hosting_type", "pci_gen", "geolocode", "vericode",
        "cluster_id", "avail_vol_ask_id", "rn",
    ),
    "float": (
        "gpu_frac", "gpu_ram", "gpu_total_ram", "gpu_mem_bw", "gpu_max_power", "gpu_max_temp",
        "compute_cap", "cpu_cores_effective", "cpu_ram", "cpu_ghz", "disk_space", "disk_bw",
        "inet_up", "inet_down", "pcie_bw", "bw_nvlink", "dlperf", "dlperf_per_dphtotal",
        "flops_per_dphtotal", "total_flops", "score", "cuda_max_good", "driver_vers",
        "dph_base", "dph_total", "dph_total_adj", "min_bid", "storage_cost",
        "storage_total_cost", "inet_up_cost", "inet_down_cost", "internet_up_cost_per_tb",
        "internet_down_cost_per_tb", "vram_costperhour", "credit_discount_max",
        "discount_rate", "discounted_hourly", "discounted_dph_total", "reliability",
        "reliability2", "reliability_mult", "expected_reliability", "duration",
        "avail_vol_dph", "avail_vol_size", "nw_disk_min_bw", "nw_disk_max_bw",
        "nw_disk_avg_bw",
    ),
    "str": (
        "gpu_name", "gpu_arch", "cpu_name", "cpu_arch", "disk_name", "driver_version",
        "geolocation", "verification", "os_version", "mobo_name", "public_ipaddr",
        "resource_type", "logo", "webpage", "hostname", "time_remaining",
        "time_remaining_isbid",
    ),
    "bool": (
        "rentable", "rented", "is_bid", "external", "static_ip", "has_avx",
        "gpu_display_active", "vms_enabled", "is_vm_deverified", "verified",
    ),
    "ts": ("start_date", "end_date"),
    "ints": ("gpu_ids",),
}
_ARROW: dict[str, pa.DataType] = {
    "int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(),
    "ts": TIMESTAMP, "ints": pa.list_(pa.int64()),
}
# `bundled_results` and the like: objects or lists of undocumented shape, kept as JSON text.
JSON_FIELDS: tuple[str, ...] = ("bundled_results",)

_META = {"vast_pipeline.market_schema_version": str(MARKET_SCHEMA_VERSION)}


def _offer_fields() -> list[pa.Field]:
    fields = [
        pa.field("snapshot_id", pa.string(), nullable=False),
        pa.field("snapshot_at", TIMESTAMP, nullable=False),
        pa.field("offer_type", pa.string(), nullable=False),  # 'on-demand' | 'bid'
    ]
    for kind, names in OFFER_FIELDS.items():
        fields += [pa.field(n, _ARROW[kind]) for n in names]
    fields += [pa.field(n, pa.string()) for n in JSON_FIELDS]
    fields += [pa.field(pricing_column(p, k), pa.float64())
               for p in PRICING_PARENTS for k in PRICING_KEYS]
    fields += [
        pa.field("extra_fields", pa.string()),               # unknown keys, one JSON object
        pa.field("quarantined_values", pa.int32(), nullable=False),
    ]
    return fields


MARKET_OFFER_SCHEMA: pa.Schema = pa.schema(_offer_fields()).with_metadata(_META)

KNOWN_OFFER_KEYS: frozenset[str] = frozenset(
    n for names in OFFER_FIELDS.values() for n in names) | frozenset(JSON_FIELDS) \
    | frozenset(PRICING_PARENTS)

MARKET_QUARANTINE_SCHEMA: pa.Schema = pa.schema([
    pa.field("snapshot_id", pa.string(), nullable=False),
    pa.field("snapshot_at", TIMESTAMP, nullable=False),
    pa.field("offer_type", pa.string()),          # NULL when the page itself was unusable
    pa.field("offer_id", pa.int64()),             # NULL when the id itself was unusable
    pa.field("field", pa.string()),               # NULL when the whole record was rejected
    pa.field("original_value", pa.string()),      # JSON text of what the API sent
    pa.field("reason", pa.string(), nullable=False),
]).with_metadata(_META)

# The commit log: one row per market snapshot, written last.
MARKET_SNAPSHOT_SCHEMA: pa.Schema = pa.schema([
    pa.field("snapshot_id", pa.string(), nullable=False),
    pa.field("snapshot_at", TIMESTAMP, nullable=False),
    pa.field("requests", pa.int64(), nullable=False),        # search responses kept
    pa.field("retries", pa.int64(), nullable=False),         # HTTP attempts retried
    pa.field("offers", pa.int64(), nullable=False),          # rows landed, both types
    pa.field("on_demand_offers", pa.int64(), nullable=False),
    pa.field("bid_offers", pa.int64(), nullable=False),
    pa.field("incomplete", pa.bool_(), nullable=False),      # a search stayed cut off
    pa.field("incomplete_reason", pa.string()),              # why, NULL when complete
    pa.field("gpu_names", pa.list_(pa.string()), nullable=False),
    pa.field("allocated_storage_gb", pa.float64(), nullable=False),
    pa.field("limit", pa.int64(), nullable=False),
    pa.field("duplicates_dropped", pa.int64(), nullable=False),  # repeats across pages
    pa.field("quarantined_records", pa.int64(), nullable=False),
    pa.field("quarantined_values", pa.int64(), nullable=False),
    pa.field("new_fields", pa.list_(pa.string())),
    pa.field("schema_version", pa.int32(), nullable=False),
]).with_metadata(_META)
