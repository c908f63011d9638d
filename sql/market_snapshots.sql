-- market_snapshots: the market's commit log, one row per market snapshot that landed
-- whole (its offers are written before it). Grain: snapshot_id. `requests` and `offers`:
-- what it took; `incomplete`: a price step held more offers than one response could carry,
-- so some offers may be missing; `gpu_names`: the GPU models it searched;
-- `allocated_storage_gb`: the disk size its dph_total prices.
-- materialized: view (live over the Parquet written by pipeline.market)
select
    snapshot_date,
    * exclude (snapshot_date)
from read_parquet(
    '{{ market_snapshots_glob }}',
    hive_partitioning = true,
    hive_types = {'snapshot_date': date},
    union_by_name = {{ market_snapshots_union_by_name }}
)
