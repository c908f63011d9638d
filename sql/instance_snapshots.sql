-- instance_snapshots: typed staging of the history, one row per instance per snapshot.
-- Grain: (account, instance_id, snapshot_at). Renames `id` to `instance_id`, adds
-- `country` (country_code, else the text after the last comma of geolocation) and
-- `gpu_util_fraction` (gpu_util on a 0..1 scale; values above 1 are percent), and the
-- billing rules, written only here: `storage_rate` ($/hour: storage_total_cost, else
-- search__disk_hour, else storage_cost ($/GB/month) * disk_space / 720), `gpu_billed`
-- (actual status running or frozen) and `storage_billed` (any status but offline, NULL
-- included). The GPU rate is dph_base.
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
    coalesce(storage_total_cost, search__disk_hour, storage_cost * disk_space / 720.0)
        as storage_rate,
    coalesce(actual_status in ('running', 'frozen'), false) as gpu_billed,
    actual_status is distinct from 'offline' as storage_billed,
    * exclude (account, snapshot_date, snapshot_at, snapshot_id, id)
from read_parquet(
    '{{ instance_snapshots_glob }}',
    hive_partitioning = true,
    hive_types = {'account': varchar, 'snapshot_date': date},
    union_by_name = {{ instance_snapshots_union_by_name }}
)
