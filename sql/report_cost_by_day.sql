-- report_cost_by_day: the cost report's days, one row per UTC day of the window with spend.
-- Call: report_cost_by_day(day_from, day_to, account_name := NULL).
-- Money and hours are spend_daily's, summed over the day's contracts; idle_cost,
-- idle_stopped_storage_cost and idle_gpu_cost are idle_spend's (always estimates);
-- cost_source: 'billed', 'estimated' or 'billed + estimated' (accounts differ that day).
-- materialized: macro
-- macro: report_cost_by_day(day_from, day_to, account_name := NULL)
with spend as (
    select
        day,
        sum(gpu_cost) as gpu_cost,
        sum(storage_cost) as storage_cost,
        sum(bandwidth_cost) as bandwidth_cost,
        sum(other_cost) as other_cost,
        sum(total_cost) as total_cost,
        sum(gpu_hours) as gpu_hours,
        case
            when bool_and(cost_source = 'billed') then 'billed'
            when bool_and(cost_source = 'estimated') then 'estimated'
            else 'billed + estimated'
        end as cost_source
    from spend_daily
    where
        day between day_from and day_to
        and (account_name is null or account = account_name)
    group by day
),

idle as (
    select
        day,
        sum(idle_cost) as idle_cost,
        sum(stopped_storage_cost) as idle_stopped_storage_cost,
        sum(idle_gpu_cost) as idle_gpu_cost
    from idle_spend
    where
        day between day_from and day_to
        and (account_name is null or account = account_name)
    group by day
)

select
    s.day,
    s.gpu_cost,
    s.storage_cost,
    s.bandwidth_cost,
    s.other_cost,
    s.total_cost,
    s.gpu_hours,
    coalesce(i.idle_cost, 0) as idle_cost,
    coalesce(i.idle_stopped_storage_cost, 0) as idle_stopped_storage_cost,
    coalesce(i.idle_gpu_cost, 0) as idle_gpu_cost,
    s.cost_source
from spend as s
left join idle as i on s.day = i.day
