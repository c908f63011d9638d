-- report_cost_by_gpu_day: spend per UTC day per GPU model over a window (the daily chart),
-- one row per (day, gpu_name) with spend; gpu_name as in report_cost_by_gpu.
-- Call: report_cost_by_gpu_day(day_from, day_to, account_name := NULL).
-- materialized: macro
-- macro: report_cost_by_gpu_day(day_from, day_to, account_name := NULL)
select
    day,
    coalesce(
        gpu_name,
        case when contract_type = 'instance' then 'unknown' else contract_type || 's' end
    ) as gpu_name,
    sum(total_cost) as total_cost
from spend_daily
where
    day between day_from and day_to
    and (account_name is null or account = account_name)
group by 1, 2
