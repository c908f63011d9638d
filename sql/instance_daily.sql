-- instance_daily: the daily fact table, one row per UTC day per instance with any observed
-- interval time that day. Grain: (account, day, instance_id). Intervals are split at UTC
-- midnight and every hour, cost and state measure is counted proportionally on each side.
-- estimated_cost_daily, idle_spend and reliability_daily are views/tables over it. Idle GPU hours
-- and cost are those of intervals with `gpu_idle` (the idle rule of instance_snapshots).
-- Attributes (label, gpu_name, ...) are the latest non-NULL values among the day's
-- intervals: the instance as it was that day (instance_latest has it as it is now).
-- running_hours: hours with the GPU billed; storage_hours: hours with the storage billed.
-- materialized: daily (Parquet partitioned by account and day, rebuilt for changed days)
-- warehouse: table
with pieces as (
    -- the part of each interval on the day it starts (k = 0) and the parts of intervals
    -- that run past midnight into the following day(s) (k >= 1), in one scan
    select
        i.*,
        cast(i.day + o.k as date) as piece_day,
        (
            epoch(least(i.interval_end, cast(i.day + o.k + 1 as timestamptz)))
            - case
                when o.k = 0 then epoch(i.interval_start)
                else epoch(cast(i.day + o.k as timestamptz))
            end
        ) / 3600.0 as piece_hours
    from instance_intervals as i
    cross join (
        select cast(range as integer) as k from range(0, getvariable('context_days') + 1)
    ) as o
    where i.day between getvariable('build_from') - getvariable('context_days')
        and getvariable('build_to')
        and i.day + o.k between getvariable('build_from') and getvariable('build_to')
        and (o.k = 0 or i.interval_end > cast(i.day + o.k as timestamptz))
)

select
    account,
    piece_day as day,
    instance_id,
    max_by(label, interval_start) as label,
    max_by(gpu_name, interval_start) as gpu_name,
    max_by(num_gpus, interval_start) as num_gpus,
    max_by(machine_id, interval_start) as machine_id,
    max_by(host_id, interval_start) as host_id,
    max_by(country, interval_start) as country,
    max_by(is_bid, interval_start) as is_bid,
    count(*) as intervals,
    sum(piece_hours) as observed_hours,
    sum(case when gpu_billed then piece_hours else 0.0 end) as running_hours,
    sum(case when gpu_billed then piece_hours * coalesce(num_gpus, 0) else 0.0 end) as gpu_hours,
    sum(case when storage_billed then piece_hours else 0.0 end) as storage_hours,
    sum(case when gpu_billed then coalesce(gpu_rate, 0) * piece_hours else 0.0 end) as gpu_cost,
    sum(case when storage_billed then coalesce(storage_rate, 0) * piece_hours else 0.0 end)
        as storage_cost,
    sum(
        case when gpu_billed then coalesce(gpu_rate, 0) * piece_hours else 0.0 end
        + case when storage_billed then coalesce(storage_rate, 0) * piece_hours else 0.0 end
    ) as total_cost,
    sum(case when storage_billed and not gpu_billed then piece_hours else 0.0 end)
        as stopped_storage_hours,
    sum(
        case
            when storage_billed and not gpu_billed then coalesce(storage_rate, 0) * piece_hours
            else 0.0
        end
    ) as stopped_storage_cost,
    sum(case when gpu_idle then piece_hours else 0.0 end) as idle_instance_hours,
    sum(case when gpu_idle then coalesce(gpu_rate, 0) * piece_hours else 0.0 end)
        as idle_gpu_cost,
    sum(case when is_up then piece_hours else 0.0 end) as up_hours,
    sum(case when is_down then piece_hours else 0.0 end) as down_hours,
    sum(case when is_starting then piece_hours else 0.0 end) as starting_hours,
    sum(case when is_capped then 1 else 0 end) as capped_intervals,
    min(interval_start) as first_interval_start,
    max(next_snapshot_at) as last_next_snapshot_at,
    min(reliability2) as reliability2_min,
    max_by(reliability2, interval_start) as reliability2_last
from pieces
group by account, piece_day, instance_id
