-- reliability_alltime_by_instance: observed reliability over the whole history of each instance.
-- Grain: (account, instance_id). window_hours runs from the instance's first snapshot to
-- the end of its last interval's span (its account's next snapshot); coverage =
-- observed_hours / window_hours. availability = up / (up + down), NULL when both are 0;
-- starting_hours: observed hours meant to run but still starting (excluded from
-- availability); time_to_running_hours: from the first snapshot to the first one seen
-- running (NULL for an instance never seen running); mttr_hours = mean
-- incident hours; mtbf_hours = up_hours / incidents (NULL without incidents).
-- reliability2 is Vast.ai's score of the host (first, last and min seen), a prior about
-- the host shown beside what was observed. The attributes, first/last seen, first running
-- and reliability2 are those of instance_latest.
-- materialized: table
with seen as (
    select
        account,
        instance_id,
        label,
        gpu_name,
        num_gpus,
        machine_id,
        host_id,
        country,
        first_seen_at as first_seen,
        last_seen_at as last_seen,
        first_running_at,
        reliability2_first,
        reliability2_last,
        reliability2_min
    from instance_latest
),

observed as (
    select
        account,
        instance_id,
        max(last_next_snapshot_at) as window_end,
        sum(observed_hours) as observed_hours,
        sum(up_hours) as up_hours,
        sum(down_hours) as down_hours,
        sum(starting_hours) as starting_hours
    from instance_daily
    group by account, instance_id
),

incident_totals as (
    select account, instance_id, count(*) as incidents, sum(hours) as incident_hours
    from incidents
    group by account, instance_id
),

joined as (
    select
        s.*,
        (epoch(greatest(coalesce(o.window_end, s.last_seen), s.last_seen)) - epoch(s.first_seen))
        / 3600.0 as window_hours,
        coalesce(o.observed_hours, 0.0) as observed_hours,
        coalesce(o.starting_hours, 0.0) as starting_hours,
        coalesce(o.up_hours, 0.0) as up_hours,
        coalesce(o.down_hours, 0.0) as down_hours,
        coalesce(i.incidents, 0) as incidents,
        coalesce(i.incident_hours, 0.0) as incident_hours
    from seen as s
    left join observed as o on s.account = o.account and s.instance_id = o.instance_id
    left join incident_totals as i on s.account = i.account and s.instance_id = i.instance_id
)

select
    account,
    instance_id,
    label,
    gpu_name,
    num_gpus,
    machine_id,
    host_id,
    country,
    first_seen,
    last_seen,
    first_running_at,
    epoch(first_running_at - first_seen) / 3600.0 as time_to_running_hours,
    window_hours,
    observed_hours,
    observed_hours / nullif(window_hours, 0) as coverage,
    starting_hours,
    up_hours,
    down_hours,
    up_hours / nullif(up_hours + down_hours, 0) as availability,
    incidents,
    incident_hours,
    incident_hours / nullif(incidents, 0) as mttr_hours,
    up_hours / nullif(incidents, 0) as mtbf_hours,
    reliability2_first,
    reliability2_last,
    reliability2_min
from joined
