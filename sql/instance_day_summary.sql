-- instance_day_summary: what was seen of one instance on one UTC day of snapshots.
-- Grain: (account, day, instance_id). A small helper: instance_latest (each instance's
-- latest attributes and lifecycle) and price_changes aggregate it instead of rescanning
-- every snapshot.
-- `first_settled_at` is the day's first snapshot with `is_settled_status` (see
-- instance_snapshots): the starting phase of an instance ends there, for good. The price
-- columns let price_changes look at snapshots only on days where a price moved.
-- `last_actual_status`/`last_intended_status` are the statuses of the day's last snapshot,
-- NULL included (a NULL status is a real state, counted as down), and
-- `last_not_running_as_meant` its `is_not_running_as_meant`. The other `*_last`
-- columns and the descriptive ones (label .. is_bid) are the day's last non-NULL value:
-- there NULL means not reported or quarantined, not a new value.
-- materialized: daily (Parquet partitioned by account and day, rebuilt for changed days)
-- warehouse: table
select
    account,
    snapshot_date as day,
    instance_id,
    count(*) as snapshots_seen,
    min(snapshot_at) as first_seen_at,
    max(snapshot_at) as last_seen_at,
    min(case when actual_status = 'running' then snapshot_at end) as first_running_at,
    min(case when is_settled_status then snapshot_at end) as first_settled_at,
    arg_max_null(actual_status, snapshot_at) as last_actual_status,
    arg_max_null(intended_status, snapshot_at) as last_intended_status,
    arg_max(is_not_running_as_meant, snapshot_at) as last_not_running_as_meant,
    min_by(reliability2, snapshot_at) as reliability2_first,
    max_by(reliability2, snapshot_at) as reliability2_last,
    min(reliability2) as reliability2_min,
    min(dph_base) as dph_base_min,
    max(dph_base) as dph_base_max,
    min(dph_total) as dph_total_min,
    max(dph_total) as dph_total_max,
    min_by(dph_base, snapshot_at) as dph_base_first,
    max_by(dph_base, snapshot_at) as dph_base_last,
    min_by(dph_total, snapshot_at) as dph_total_first,
    max_by(dph_total, snapshot_at) as dph_total_last,
    max_by(label, snapshot_at) as label,
    max_by(gpu_name, snapshot_at) as gpu_name,
    max_by(num_gpus, snapshot_at) as num_gpus,
    max_by(machine_id, snapshot_at) as machine_id,
    max_by(host_id, snapshot_at) as host_id,
    max_by(country, snapshot_at) as country,
    max_by(is_bid, snapshot_at) as is_bid
from instance_snapshots
where snapshot_date between getvariable('build_from') and getvariable('build_to')
group by account, snapshot_date, instance_id
