-- instance_snapshots: typed staging of the history, one row per instance per snapshot.
-- Grain: (account, instance_id, snapshot_at). Renames `id` to `instance_id`, adds
-- `country` (country_code, else the text after the last comma of geolocation) and
-- `gpu_util_fraction` (gpu_util on a 0..1 scale; values above 1 are percent).
-- materialized: view (live over the Parquet written by pipeline.history)
select
    account,
    snapshot_date,
    snapshot_at,
    snapshot_id,
    id as instance_id,
    coalesce(
        nullif(trim(country_code), ''),
        nullif(trim(string_split(geolocation, ',')[-1]), '')
    ) as country,
    case when gpu_util > 1 then gpu_util / 100.0 else gpu_util end as gpu_util_fraction,
    * exclude (account, snapshot_date, snapshot_at, snapshot_id, id)
from read_parquet(
    '{{ instance_snapshots_glob }}',
    hive_partitioning = true,
    hive_types = {'account': varchar, 'snapshot_date': date},
    union_by_name = true
)
