-- market_snapshots: the market's commit log, one row per market snapshot that landed
-- whole (its offers are written before it). Grain: snapshot_id. `requests` and `offers`:
-- what it took; `incomplete`: a price step held more offers than one response could carry,
-- so some offers may be missing; `gpu_names`: the GPU models it searched;
-- `allocated_storage_gb`: the disk size its dph_total prices.
-- materialized: table
-- A table, not a view of the files: market_prices, market_history and the savings advice
-- read it on every build, and binding a year of day files cost 0.1 s each time. An
-- incremental build replaces the days from the first changed day of the log (a day's rows
-- are its file's), reading only those days' files.
-- incremental rows: snapshot_date >= getvariable('market_snapshots_changed_from')
-- incremental day: snapshot_date
select
    snapshot_date,
    * exclude (snapshot_date)
from read_parquet(
    '{{ market_snapshots_glob }}',
    hive_partitioning = true,
    hive_types = {'snapshot_date': date},
    union_by_name = {{ market_snapshots_union_by_name }}
)
where snapshot_date >= least(
    getvariable('recompute_from'), getvariable('market_snapshots_changed_from')
)
