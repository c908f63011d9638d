-- report_reliability_by_host: observed reliability per host over a window, one row per
-- host with reliability_daily_by_host rows in it.
-- Call: report_reliability_by_host(day_from, day_to, account_name := NULL).
-- instances, machines: distinct over the window (report_reliability_by_instance); hours and
-- incidents_started: reliability_daily_by_host summed over the window's days;
-- availability = up / (up + down); coverage = the member instances' covered hours / span
-- hours in the window; reliability2_last / reliability2_min: the lowest last score and
-- the lowest score seen. availability_rank 1 = the least available (then most down
-- hours); hosts = how many rows, for "top N of M".
-- materialized: macro
-- macro: report_reliability_by_host(day_from, day_to, account_name := NULL)
with daily as (
    select
        host_id,
        sum(observed_hours) as observed_hours,
        sum(up_hours) as up_hours,
        sum(down_hours) as down_hours,
        sum(starting_hours) as starting_hours,
        sum(incidents_started) as incidents_started,
        min(reliability2_min) as reliability2_min
    from reliability_daily_by_host
    where
        day between day_from and day_to
        and (account_name is null or account = account_name)
    group by host_id
),

members as (
    select
        host_id,
        count(*) as instances,
        count(distinct machine_id) as machines,
        sum(covered_hours) as covered_hours,
        sum(span_hours) as span_hours,
        min(reliability2_last) as reliability2_last
    from report_reliability_by_instance(day_from, day_to, account_name := account_name)
    group by host_id
),

joined as (
    select
        d.host_id,
        m.instances,
        m.machines,
        d.observed_hours,
        d.up_hours,
        d.down_hours,
        d.starting_hours,
        d.up_hours / nullif(d.up_hours + d.down_hours, 0) as availability,
        m.covered_hours / nullif(m.span_hours, 0) as coverage,
        d.incidents_started,
        m.reliability2_last,
        d.reliability2_min
    from daily as d
    left join members as m on d.host_id is not distinct from m.host_id
)

select
    *,
    row_number() over (order by availability asc nulls last, down_hours desc, host_id)
        as availability_rank,
    count(*) over () as hosts
from joined
