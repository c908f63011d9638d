-- report_cost_by_gpu: spend per GPU model over a window, one row per GPU model (volumes
-- and other contracts without a GPU under their contract type, e.g. 'volumes').
-- Call: report_cost_by_gpu(day_from, day_to, account_name := NULL).
-- total_cost, gpu_hours (hours x GPU count): spend_daily summed; share_of_spend =
-- total_cost / the window's spend_total; cost_per_gpu_hour = total_cost / gpu_hours;
-- spend_rank 1 = the most spent (ties by name); gpu_models = how many rows.
-- materialized: macro
-- macro: report_cost_by_gpu(day_from, day_to, account_name := NULL)
with gpus as (
    select
        coalesce(
            gpu_name,
            case when contract_type = 'instance' then 'unknown' else contract_type || 's' end
        ) as gpu_name,
        sum(total_cost) as total_cost,
        sum(gpu_hours) as gpu_hours
    from spend_daily
    where
        day between day_from and day_to
        and (account_name is null or account = account_name)
    group by 1
)

select
    gpu_name,
    total_cost,
    gpu_hours,
    total_cost / nullif(sum(total_cost) over (), 0) as share_of_spend,
    total_cost / nullif(gpu_hours, 0) as cost_per_gpu_hour,
    row_number() over (order by total_cost desc, gpu_name) as spend_rank,
    count(*) over () as gpu_models
from gpus
