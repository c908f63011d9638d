"""The schema contract of the `instance_snapshots` history.

One place says which API fields we know, how each is typed in Parquet, and what the
history columns are called. Flattening (`pipeline.landing.flatten`), the SQL models (`sql/`) and
the README all follow this module; bump `SCHEMA_VERSION` when a column changes meaning or
type, so older partitions are re-derived from the raw zone instead of being misread.

Conventions (dlt's, see the README):
- API keys keep their snake_case names; nested pricing objects become `parent__child_key`
  (`search.gpuCostPerHour` -> `search__gpu_cost_per_hour`).
- Lists are typed list columns, not child tables (one row per instance-snapshot keeps
  the history one table; DuckDB, Spark and Trino all read Parquet lists natively).
- Values that cannot be coerced losslessly become NULL and go to the quarantine table
  with their original value and a reason; unknown keys go to the `extra_fields` JSON column.
- Hive partition columns (`account`, `snapshot_date`) live in the directory names, not in
  the files.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

TIMESTAMP = pa.timestamp("us", tz="UTC")

# Scalar API fields by Parquet type. Epoch-second fields become UTC timestamps.
INT_FIELDS: tuple[str, ...] = (
    "id", "template_id", "ssh_port", "machine_dir_ssh_port", "machine_id", "bundle_id",
    "cpu_cores", "cpu_ram", "gpu_totalram", "gpu_ram", "gpu_lanes", "direct_port_count",
    "direct_port_start", "direct_port_end", "host_id", "hosting_type", "pci_gen", "num_gpus",
)
FLOAT_FIELDS: tuple[str, ...] = (
    "uptime_mins", "duration", "cpu_cores_effective", "cpu_util", "mem_limit", "mem_usage",
    "vmem_usage", "gpu_util", "gpu_temp", "gpu_frac", "gpu_mem_bw", "bw_nvlink", "disk_space",
    "disk_bw", "disk_util", "disk_usage", "min_bid", "dph_base", "dph_total", "dlperf",
    "dlperf_per_dphtotal", "flops_per_dphtotal", "total_flops", "score", "reliability2",
    "pcie_bw", "storage_cost", "storage_total_cost", "vram_costperhour", "credit_balance",
    "credit_discount", "credit_discount_max", "client_run_time", "host_run_time",
    "inet_up", "inet_down", "inet_up_cost", "inet_down_cost", "inet_up_billed",
    "inet_down_billed", "internet_up_cost_per_tb", "internet_down_cost_per_tb",
    "cuda_max_good", "compute_cap",
)
STRING_FIELDS: tuple[str, ...] = (
    "actual_status", "intended_status", "cur_state", "next_state", "label", "template_hash_id",
    "template_name", "image_uuid", "image_runtype", "onstart", "status_msg", "ssh_host",
    "ssh_idx", "cpu_arch", "cpu_name", "gpu_name", "gpu_arch", "disk_name", "public_ipaddr",
    "geolocation", "verification", "os_version", "mobo_name", "logo", "webpage",
    "time_remaining", "time_remaining_isbid", "country_code", "driver_version",
)
BOOL_FIELDS: tuple[str, ...] = (
    "static_ip", "rentable", "is_bid", "external", "has_avx", "gpu_display_active",
)
TIMESTAMP_FIELDS: tuple[str, ...] = ("start_date", "end_date")
# Lists: `ports` holds container port numbers (v0 sends a list, v1 an object keyed
# "8080/tcp"); `image_args` a list of strings (a bare string becomes a one-item list);
# `local_ipaddrs` is split on whitespace.
LIST_INT_FIELDS: tuple[str, ...] = ("ports",)
LIST_STRING_FIELDS: tuple[str, ...] = ("image_args", "local_ipaddrs")
# Objects kept whole as JSON text (shape undocumented).
JSON_FIELDS: tuple[str, ...] = ("volume_info",)

# Nested pricing objects: API key -> column suffix. Missing keys are NULL.
PRICING_PARENTS: tuple[str, ...] = ("search", "instance")
PRICING_KEYS: dict[str, str] = {
    "gpuCostPerHour": "gpu_cost_per_hour",
    "diskHour": "disk_hour",
    "totalHour": "total_hour",
    "discountTotalHour": "discount_total_hour",
    "discountedTotalPerHour": "discounted_total_per_hour",
}

# Secrets: removed before anything touches disk (see pipeline.core.secrets).
SECRET_FIELDS: tuple[str, ...] = ("jupyter_token", "extra_env")


def pricing_column(parent: str, key: str) -> str:
    """`search`, `gpuCostPerHour` -> `search__gpu_cost_per_hour` (dlt's parent-path naming)."""
    return f"{parent}__{PRICING_KEYS[key]}"


def _fields() -> list[pa.Field]:
    fields = [
        pa.field("snapshot_id", pa.string(), nullable=False),
        pa.field("snapshot_at", TIMESTAMP, nullable=False),
    ]
    fields += [pa.field(n, pa.int64()) for n in INT_FIELDS]
    fields += [pa.field(n, pa.float64()) for n in FLOAT_FIELDS]
    fields += [pa.field(n, pa.string()) for n in STRING_FIELDS]
    fields += [pa.field(n, pa.bool_()) for n in BOOL_FIELDS]
    fields += [pa.field(n, TIMESTAMP) for n in TIMESTAMP_FIELDS]
    fields += [pa.field(n, pa.list_(pa.int64())) for n in LIST_INT_FIELDS]
    fields += [pa.field(n, pa.list_(pa.string())) for n in LIST_STRING_FIELDS]
    fields += [pa.field(n, pa.string()) for n in JSON_FIELDS]
    fields += [
        pa.field(pricing_column(p, k), pa.float64()) for p in PRICING_PARENTS for k in PRICING_KEYS
    ]
    fields += [
        # Secrets, defused: whether a token was present, and the env variable names only.
        pa.field("has_jupyter_token", pa.bool_()),
        pa.field("extra_env_names", pa.list_(pa.string())),
        # Unknown keys the API started sending, as one JSON object (NULL when none).
        pa.field("extra_fields", pa.string()),
        # How many of this row's values went to quarantine (0 when clean).
        pa.field("quarantined_values", pa.int32(), nullable=False),
    ]
    return fields


SNAPSHOT_SCHEMA: pa.Schema = pa.schema(_fields()).with_metadata(
    {"vast_pipeline.schema_version": str(SCHEMA_VERSION)}
)

# Every API key the schema knows (top-level), used to tell unknown new fields apart.
KNOWN_API_KEYS: frozenset[str] = frozenset(
    INT_FIELDS + FLOAT_FIELDS + STRING_FIELDS + BOOL_FIELDS + TIMESTAMP_FIELDS
    + LIST_INT_FIELDS + LIST_STRING_FIELDS + JSON_FIELDS + PRICING_PARENTS + SECRET_FIELDS
    + ("has_jupyter_token", "extra_env_names")
)

# One row per value (or whole record) that could not be kept as typed.
QUARANTINE_SCHEMA: pa.Schema = pa.schema([
    pa.field("snapshot_id", pa.string(), nullable=False),
    pa.field("snapshot_at", TIMESTAMP, nullable=False),
    pa.field("instance_id", pa.int64()),          # NULL when the id itself was unusable
    pa.field("field", pa.string()),               # NULL when the whole record was rejected
    pa.field("original_value", pa.string()),      # JSON text of what the API sent
    pa.field("reason", pa.string(), nullable=False),
]).with_metadata({"vast_pipeline.schema_version": str(SCHEMA_VERSION)})


# The snapshot log: one row per successful snapshot, even one that listed zero instances.
SNAPSHOT_LOG_SCHEMA: pa.Schema = pa.schema([
    pa.field("snapshot_id", pa.string(), nullable=False),
    pa.field("snapshot_at", TIMESTAMP, nullable=False),
    pa.field("instances", pa.int64(), nullable=False),          # rows landed
    pa.field("quarantined_records", pa.int64(), nullable=False),
    pa.field("quarantined_values", pa.int64(), nullable=False),
    pa.field("pages", pa.int64()),
    pa.field("new_fields", pa.list_(pa.string())),              # unknown keys seen, sorted
    pa.field("schema_version", pa.int32(), nullable=False),
]).with_metadata({"vast_pipeline.schema_version": str(SCHEMA_VERSION)})


# -- billed charges (GET /api/v0/charges/, one request window per UTC day) ----------------
# Why a separate contract: bills are historical and settle late, so a day's bill is
# replaced whole whenever it is fetched again; the day log below is its commit record.

# One row per contract (instance, volume, serverless...) per UTC day per item type.
# Items are kept as sent (gpu, disk, bwd, bwu, or any new type); when the items do not add
# up to the contract's amount the remainder is one more row of item_type `other`, so the
# rows of a day always sum to the bill.
BILLED_CHARGE_SCHEMA: pa.Schema = pa.schema([
    pa.field("fetch_id", pa.string(), nullable=False),     # = billed_days.fetch_id
    pa.field("fetched_at", TIMESTAMP, nullable=False),
    pa.field("contract_type", pa.string(), nullable=False),  # instance, volume, serverless
    pa.field("source", pa.string()),                         # as sent: "instance-123"
    pa.field("contract_id", pa.int64()),                     # the number in `source`
    pa.field("instance_id", pa.int64()),                     # contract_id of instances only
    pa.field("label", pa.string()),                          # metadata.label
    pa.field("template_id", pa.int64()),                     # metadata.template_id
    pa.field("contract_description", pa.string()),           # "Instance 123 Charges - 1 days"
    pa.field("contract_start", TIMESTAMP),
    pa.field("contract_end", TIMESTAMP),
    pa.field("contract_amount", pa.float64()),               # rounded to 3 decimals by Vast
    pa.field("item_type", pa.string(), nullable=False),      # gpu, disk, bwd, bwu, other, ...
    pa.field("item_start", TIMESTAMP),
    pa.field("item_end", TIMESTAMP),
    pa.field("item_description", pa.string()),               # "96.000 hours at $0.389/hour"
    pa.field("amount", pa.float64(), nullable=False),        # $ of this item on this day
    pa.field("quantity", pa.float64()),                      # parsed from the description
    pa.field("quantity_unit", pa.string()),                  # "hours", "GB"; NULL unparsed
    pa.field("unit_price", pa.float64()),                    # $ per unit, NULL unparsed
    pa.field("metadata", pa.string()),                       # the contract's metadata, JSON
]).with_metadata({"vast_pipeline.schema_version": str(SCHEMA_VERSION)})

# The bill log: one row per fetched (account, day), even a day with no charges. The commit
# record: written after the new charges rows, before the old ones are dropped; charges and
# quarantine rows whose fetch_id is not the logged one are left-overs: skip them.
BILLED_DAY_SCHEMA: pa.Schema = pa.schema([
    pa.field("fetch_id", pa.string(), nullable=False),
    pa.field("fetched_at", TIMESTAMP, nullable=False),
    pa.field("window_start", TIMESTAMP, nullable=False),     # the day's midnight (gte)
    pa.field("window_end", TIMESTAMP, nullable=False),       # midnight + 86399 s (lte)
    pa.field("contracts", pa.int64(), nullable=False),
    pa.field("items", pa.int64(), nullable=False),           # rows in billed_charges
    pa.field("total_amount", pa.float64(), nullable=False),  # sum of the contracts' amounts
    pa.field("pages", pa.int64()),
    pa.field("quarantined", pa.int64(), nullable=False),     # rows in billed_quarantine
    pa.field("schema_version", pa.int32(), nullable=False),
]).with_metadata({"vast_pipeline.schema_version": str(SCHEMA_VERSION)})

# Charge results (or values) that could not be typed, with the reason.
BILLED_QUARANTINE_SCHEMA: pa.Schema = pa.schema([
    pa.field("fetch_id", pa.string(), nullable=False),
    pa.field("fetched_at", TIMESTAMP, nullable=False),
    pa.field("source", pa.string()),
    pa.field("field", pa.string()),               # NULL when the whole result was rejected
    pa.field("original_value", pa.string()),      # JSON text of what the API sent
    pa.field("reason", pa.string(), nullable=False),
]).with_metadata({"vast_pipeline.schema_version": str(SCHEMA_VERSION)})


# -- market offers (POST /api/v0/bundles/, one market snapshot = every response page) ------
# Why a contract of its own: offers belong to no account (the market is the same for every
# renter), so these datasets are partitioned by `snapshot_date` only, and their version
# moves independently of the instance history's. Fields the instance contract knows too
# are typed alike there and here, so the two join without casts. Fields and types follow
# the response example of `openapi/search_offers.yaml` and the offer fields of market.md.
MARKET_SCHEMA_VERSION = 1

MARKET_INT_FIELDS: tuple[str, ...] = (
    "id", "ask_contract_id", "bundle_id", "machine_id", "host_id", "cpu_cores", "cpu_ram",
    "direct_port_count", "driver_vers", "geolocode", "gpu_lanes", "gpu_ram", "gpu_total_ram",
    "hosting_type", "num_gpus", "pci_gen", "vericode", "cluster_id", "avail_vol_ask_id", "rn",
)
MARKET_FLOAT_FIELDS: tuple[str, ...] = (
    "bw_nvlink", "compute_cap", "cpu_cores_effective", "cpu_ghz", "credit_discount_max",
    "cuda_max_good", "disk_bw", "disk_space", "dlperf", "dlperf_per_dphtotal", "dph_base",
    "dph_total", "duration", "flops_per_dphtotal", "gpu_frac", "gpu_mem_bw", "gpu_max_power",
    "gpu_max_temp", "inet_down", "inet_down_cost", "inet_up", "inet_up_cost", "min_bid",
    "pcie_bw", "reliability", "reliability_mult", "score", "storage_cost",
    "storage_total_cost", "total_flops", "vram_costperhour", "expected_reliability",
    "avail_vol_dph", "avail_vol_size", "nw_disk_min_bw", "nw_disk_max_bw", "nw_disk_avg_bw",
    "dph_total_adj", "reliability2", "discount_rate", "discounted_hourly",
    "discounted_dph_total", "internet_up_cost_per_tb", "internet_down_cost_per_tb",
)
MARKET_STRING_FIELDS: tuple[str, ...] = (
    "cpu_arch", "cpu_name", "disk_name", "driver_version", "geolocation", "gpu_arch",
    "gpu_name", "hostname", "logo", "mobo_name", "os_version", "public_ipaddr",
    "verification", "webpage", "resource_type", "time_remaining", "time_remaining_isbid",
)
MARKET_BOOL_FIELDS: tuple[str, ...] = (
    "external", "gpu_display_active", "has_avx", "is_bid", "rentable", "rented", "static_ip",
    "vms_enabled", "is_vm_deverified",
)
MARKET_TIMESTAMP_FIELDS: tuple[str, ...] = ("start_date", "end_date")  # epoch seconds
MARKET_LIST_INT_FIELDS: tuple[str, ...] = ("gpu_ids",)
# Sent as null in the example, shape undocumented: kept whole as JSON text.
MARKET_JSON_FIELDS: tuple[str, ...] = ("bundled_results",)
# The nested price breakdowns (`search`, `instance`) use the instance contract's
# PRICING_PARENTS / PRICING_KEYS and `pricing_column` naming.
OFFER_TYPES: tuple[str, ...] = ("on-demand", "bid")

# Every top-level offer key the contract knows, to tell unknown new fields apart.
KNOWN_OFFER_KEYS: frozenset[str] = frozenset(
    MARKET_INT_FIELDS + MARKET_FLOAT_FIELDS + MARKET_STRING_FIELDS + MARKET_BOOL_FIELDS
    + MARKET_TIMESTAMP_FIELDS + MARKET_LIST_INT_FIELDS + MARKET_JSON_FIELDS + PRICING_PARENTS
)
_MARKET_META = {"vast_pipeline.market_schema_version": str(MARKET_SCHEMA_VERSION)}


def _offer_fields() -> list[pa.Field]:
    fields = [
        pa.field("snapshot_id", pa.string(), nullable=False),
        pa.field("snapshot_at", TIMESTAMP, nullable=False),
        pa.field("offer_type", pa.string(), nullable=False),  # one of OFFER_TYPES
    ]
    fields += [pa.field(n, pa.int64()) for n in MARKET_INT_FIELDS]
    fields += [pa.field(n, pa.float64()) for n in MARKET_FLOAT_FIELDS]
    fields += [pa.field(n, pa.string()) for n in MARKET_STRING_FIELDS]
    fields += [pa.field(n, pa.bool_()) for n in MARKET_BOOL_FIELDS]
    fields += [pa.field(n, TIMESTAMP) for n in MARKET_TIMESTAMP_FIELDS]
    fields += [pa.field(n, pa.list_(pa.int64())) for n in MARKET_LIST_INT_FIELDS]
    fields += [pa.field(n, pa.string()) for n in MARKET_JSON_FIELDS]
    fields += [
        pa.field(pricing_column(p, k), pa.float64()) for p in PRICING_PARENTS for k in PRICING_KEYS
    ]
    fields += [
        pa.field("extra_fields", pa.string()),  # unknown keys as one JSON object, NULL if none
        pa.field("quarantined_values", pa.int32(), nullable=False),
    ]
    return fields


# One row per (snapshot_id, offer_type, id): an offer as one market snapshot saw it.
MARKET_OFFER_SCHEMA: pa.Schema = pa.schema(_offer_fields()).with_metadata(_MARKET_META)

# One row per offer value (or whole offer) that could not be kept as typed.
MARKET_QUARANTINE_SCHEMA: pa.Schema = pa.schema([
    pa.field("snapshot_id", pa.string(), nullable=False),
    pa.field("snapshot_at", TIMESTAMP, nullable=False),
    pa.field("offer_type", pa.string(), nullable=False),
    pa.field("offer_id", pa.int64()),             # NULL when the id itself was unusable
    pa.field("field", pa.string()),               # NULL when the whole offer was rejected
    pa.field("original_value", pa.string()),      # JSON text of what the API sent
    pa.field("reason", pa.string(), nullable=False),
]).with_metadata(_MARKET_META)

# The market snapshot log, the commit record written last: one row per market snapshot.
MARKET_SNAPSHOT_LOG_SCHEMA: pa.Schema = pa.schema([
    pa.field("snapshot_id", pa.string(), nullable=False),
    pa.field("snapshot_at", TIMESTAMP, nullable=False),
    pa.field("requests", pa.int64(), nullable=False),       # search requests it took
    pa.field("offers", pa.int64(), nullable=False),         # rows landed in market_offers
    pa.field("incomplete", pa.bool_(), nullable=False),     # a query hit its limit or failed
    pa.field("gpu_names", pa.list_(pa.string())),           # the GPU models searched
    pa.field("allocated_storage_gb", pa.float64()),         # disk priced into dph_total
    pa.field("quarantined_records", pa.int64(), nullable=False),
    pa.field("quarantined_values", pa.int64(), nullable=False),
    pa.field("new_fields", pa.list_(pa.string())),          # unknown keys seen, sorted
    pa.field("schema_version", pa.int32(), nullable=False),  # MARKET_SCHEMA_VERSION
]).with_metadata(_MARKET_META)
