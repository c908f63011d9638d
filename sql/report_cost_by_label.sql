-- report_cost_by_label: spend per instance label over a window, one row per label
-- ('(no label)' for contracts without one; a volume's label is its contract type).
-- Call: report_cost_by_label(day_from, day_to, account_name := NULL).
-- contracts: how many contracts carried the label; gpu_hours, total_cost: spend_daily
-- summed; share_of_spend = total_cost / the window's spend_total; spend_rank 1 = the most
-- spent (ties by label); labels = how many rows, for "top N of M".
-- materialized: macro
-- macro: report_cost_by_label(day_from, day_to, account_name := NULL)
with labelled as (
    select
        coalesce(
            label, case when contract_type = 'instance' then '(no label)' else contract_type end
        ) as label,
        count(distinct account || '/' || contract_type || '/' || contract_id) as contracts,
        sum(gpu_hours) as gpu_hours,
        sum(total_cost) as total_cost
    from spend_daily
    where
        day between day_from and day_to
        and (account_name is null or account = account_name)
    group by 1
)

select
    label,
    contracts,
    gpu_hours,
    total_cost,
    total_cost / nullif(sum(total_cost) over (), 0) as share_of_spend,
    row_number() over (order by total_cost desc, label) as spend_rank,
    count(*) over () as labels
from labelled
