-- instance_snapshots: typed staging of the history, one row per instance per snapshot.
-- Grain: (account, instance_id, snapshot_at). Renames `id` to `instance_id`, adds
-- `country` (country_code, else the text after the last comma of geolocation) and
-- `gpu_util_fraction` (gpu_util on a 0..1 scale; values above 1 are percent), and the
-- rules every model and alert reads, written only here:
-- - billing: `storage_rate` ($/hour: storage_total_cost, else search__disk_hour, else
--   storage_cost ($/GB/month) * disk_space / 720), `gpu_billed` (actual status running or
--   frozen) and `storage_billed` (any status but offline, NULL included). The GPU rate is
--   dph_base. What the instance costs per hour at that snapshot under those rules:
--   `gpu_burn_rate_per_hour` (dph_base while gpu_billed), `storage_burn_rate_per_hour`
--   (storage_rate while storage_billed) and `burn_rate_per_hour`, their sum (fleet_now
--   and the instance_down alert read them). The idle rule: `gpu_idle` = the GPU billed
--   while gpu_util_fraction < 0.05 (under 5 %; an unknown utilisation is not idle), which
--   instance_intervals (and through it instance_daily, idle_spend and the idle_gpu alert)
--   and fleet_now read.
-- - lifecycle: `is_settled_status`, the actual status is one an instance shows only once
--   it has started (anything but NULL, `created` or `loading`); its first such snapshot
--   ends its starting phase for good (instance_latest.first_settled_at).
--   `is_not_running_as_meant`: intended status running, actual status anything else (NULL
--   included); down once the starting phase has ended (instance_states.is_down).
-- materialized: view (live over the Parquet written by pipeline.landing.history)
select
    typed.*,
    case when gpu_billed then coalesce(dph_base, 0) else 0.0 end as gpu_burn_rate_per_hour,
    case when storage_billed then coalesce(storage_rate, 0) else 0.0 end
        as storage_burn_rate_per_hour,
    case when gpu_billed then coalesce(dph_base, 0) else 0.0 end
    + case when storage_billed then coalesce(storage_rate, 0) else 0.0 end as burn_rate_per_hour,
    gpu_billed and coalesce(gpu_util_fraction < 0.05, false) as gpu_idle
from (
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
        coalesce(actual_status not in ('created', 'loading'), false) as is_settled_status,
        coalesce(intended_status = 'running', false)
        and actual_status is distinct from 'running' as is_not_running_as_meant,
        * exclude (account, snapshot_date, snapshot_at, snapshot_id, id)
    from read_parquet(
        '{{ instance_snapshots_glob }}',
        hive_partitioning = true,
        hive_types = {'account': varchar, 'snapshot_date': date},
        union_by_name = {{ instance_snapshots_union_by_name }}
    )
) as typed
