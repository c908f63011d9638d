-- market_offers: the offer search's snapshots, typed, one row per (market snapshot,
-- offer_type, offer id). Grain: (snapshot_id, offer_type, offer_id). The market belongs to
-- no account (hive-partitioned by snapshot_date only). The same machine appears under both
-- types, priced differently: `on-demand` (dph_base, dph_total at the snapshot's
-- allocated storage) and `bid` (interruptible: `min_bid`, the lowest bid it takes).
-- Offer ids change when an offer is rented: follow an offer over time by
-- (machine_id, num_gpus, offer_type). `storage_cost` is $/GB/month, `disk_space` GB free to
-- rent, `duration` seconds the host still lets it be rented, `reliability` the host score
-- (instances call it reliability2), `verification` verified / deverified / unverified.
-- `country`: the text after the last comma of geolocation ("Texas, US" -> US).
-- materialized: view (live over the Parquet written by pipeline.market)
select
    snapshot_date,
    snapshot_id,
    snapshot_at,
    id as offer_id,
    machine_id,
    host_id,
    gpu_name,
    num_gpus,
    offer_type,
    dph_base,
    dph_total,
    min_bid,
    storage_cost,
    disk_space,
    reliability,
    verification,
    geolocation,
    nullif(trim(string_split(geolocation, ',')[-1]), '') as country,
    dlperf,
    inet_down,
    inet_up,
    duration,
    rentable
from read_parquet(
    '{{ market_offers_glob }}',
    hive_partitioning = true,
    hive_types = {'snapshot_date': date},
    union_by_name = {{ market_offers_union_by_name }}
)
