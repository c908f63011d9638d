-- report_reliability_by_instance: observed reliability per instance over a window, one
-- row per instance with reliability_daily rows in it.
-- Call: report_reliability_by_instance(day_from, day_to, account_name := NULL).
-- Hours and incidents_started: reliability_daily summed over the window's days;
-- availability = up / (up + down) (NULL when the instance was never meant to run);
-- covered_hours: its instance_intervals clipped to the window; span_hours: from the first
-- to the last of those clipped; coverage = covered / span. label .. country:
-- reliability_alltime_by_instance (the newest seen); reliability2_last: the window's newest,
-- reliability2_min its lowest. availability_rank 1 = the least available (then most down
-- hours); instances = how many rows, for "top N of M".
-- materialized: macro
-- macro: report_reliability_by_instance(day_from, day_to, account_name := NULL)
with daily as (
    select
        account,
        instance_id,
        sum(observed_hours) as observed_hours,
        sum(up_hours) as up_hours,
        sum(down_hours) as down_hours,
        sum(starting_hours) as starting_hours,
        sum(incidents_started) as incidents_started,
        arg_max(reliability2_last, day) as reliability2_last,
        min(reliability2_min) as reliability2_min
    from reliability_daily
    where
        day between day_from and day_to
        and (account_name is null or account = account_name)
    group by account, instance_id
),

clipped as (
    select
        account,
        instance_id,
        greatest(interval_start, cast(cast(day_from as date) as timestamptz)) as s,
        least(interval_end, cast(cast(day_to as date) + interval 1 day as timestamptz)) as e
    from instance_intervals
    where
        -- an interval starts at most 2 days before it ends (the cap is at most 2 x 24 h):
        -- the bound lets the scan skip the day files of the rest of the history
        day between cast(day_from as date) - 2 and day_to
        and interval_end > cast(cast(day_from as date) as timestamptz)
        and interval_start < cast(cast(day_to as date) + interval 1 day as timestamptz)
        and (account_name is null or account = account_name)
),

covered as (
    select
        account,
        instance_id,
        sum(epoch(e - s)) / 3600.0 as covered_hours,
        epoch(max(e) - min(s)) / 3600.0 as span_hours
    from clipped
    group by account, instance_id
),

joined as (
    select
        d.account,
        d.instance_id,
        b.label,
        b.gpu_name,
        b.machine_id,
        b.host_id,
        b.country,
        d.observed_hours,
        d.up_hours,
        d.down_hours,
        d.starting_hours,
        d.incidents_started,
        d.up_hours / nullif(d.up_hours + d.down_hours, 0) as availability,
        c.covered_hours,
        c.span_hours,
        c.covered_hours / nullif(c.span_hours, 0) as coverage,
        d.reliability2_last,
        d.reliability2_min
    from daily as d
    left join reliability_alltime_by_instance as b
        on d.account = b.account and d.instance_id = b.instance_id
    left join covered as c on d.account = c.account and d.instance_id = c.instance_id
)

select
    *,
    row_number() over (
        order by availability asc nulls last, down_hours desc, instance_id, account
    ) as availability_rank,
    count(*) over () as instances
from joined
