-- instance_latest: one row per instance ever seen, what is known of it as of its latest
-- snapshot. Grain: (account, instance_id).
-- The attributes (label, gpu_name, num_gpus, machine_id, host_id, country, is_bid) are
-- the latest non-NULL value of each by snapshot time: a NULL means not reported or
-- quarantined, not a new value. This is the one rule for an instance's attributes as
-- they are now: reliability_alltime_by_instance and the alerts read them here (a model of one of
-- its days or incidents keeps the latest non-NULL values within it: as it was then).
-- Lifecycle: `first_seen_at`, `last_seen_at` (its first and last snapshot),
-- `first_running_at` (first snapshot with actual status running; NULL if it never ran),
-- `first_settled_at` (first snapshot with `is_settled_status`, see instance_snapshots:
-- the end of its starting phase, for good; NULL while it never settled). Vast.ai's host
-- score `reliability2`: first, last and lowest seen.
-- A view: each reader aggregates instance_day_summary for the columns it reads only, at
-- the cost of the per-reader aggregates it replaced (a table cost more to write).
-- materialized: view
select
    account,
    instance_id,
    max_by(label, day) as label,
    max_by(gpu_name, day) as gpu_name,
    max_by(num_gpus, day) as num_gpus,
    max_by(machine_id, day) as machine_id,
    max_by(host_id, day) as host_id,
    max_by(country, day) as country,
    max_by(is_bid, day) as is_bid,
    min(first_seen_at) as first_seen_at,
    max(last_seen_at) as last_seen_at,
    min(first_running_at) as first_running_at,
    min(first_settled_at) as first_settled_at,
    min_by(reliability2_first, day) as reliability2_first,
    max_by(reliability2_last, day) as reliability2_last,
    min(reliability2_min) as reliability2_min
from instance_day_summary
group by account, instance_id
