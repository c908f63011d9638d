-- report_cost_by_contract: spend per contract over a window, one row per (account,
-- contract_type, contract_id) with spend; instances have contract_type 'instance' and
-- contract_id = instance_id.
-- Call: report_cost_by_contract(day_from, day_to, account_name := NULL).
-- Money and hours: spend_daily summed over the window; label, gpu_name, host_id: the
-- newest day's in the window (a volume without a label is named by its contract type);
-- num_gpus the most seen; is_bid: interruptible on any day. idle_cost: idle_spend's
-- (estimates). cost_per_gpu_hour = total_cost / gpu_hours. cost_source as in
-- report_cost_by_day. spend_rank 1 = the most spent (ties by contract); contracts = how
-- many rows, for "top N of M".
-- materialized: macro
-- macro: report_cost_by_contract(day_from, day_to, account_name := NULL)
with spend as (
    select
        account,
        contract_type,
        contract_id,
        coalesce(
            arg_max(label, day),
            case when contract_type = 'instance' then null else contract_type end
        ) as label,
        arg_max(
            coalesce(
                gpu_name,
                case when contract_type = 'instance' then 'unknown' else contract_type || 's' end
            ),
            day
        ) as gpu_name,
        max(num_gpus) as num_gpus,
        bool_or(is_bid) as is_bid,
        arg_max(host_id, day) as host_id,
        sum(instance_hours) as instance_hours,
        sum(gpu_hours) as gpu_hours,
        sum(gpu_cost) as gpu_cost,
        sum(storage_cost) as storage_cost,
        sum(bandwidth_cost) as bandwidth_cost,
        sum(other_cost) as other_cost,
        sum(total_cost) as total_cost,
        case
            when bool_and(cost_source = 'billed') then 'billed'
            when bool_and(cost_source = 'estimated') then 'estimated'
            else 'billed + estimated'
        end as cost_source
    from spend_daily
    where
        day between day_from and day_to
        and (account_name is null or account = account_name)
    group by account, contract_type, contract_id
),

idle as (
    select account, instance_id, sum(idle_cost) as idle_cost
    from idle_spend
    where
        day between day_from and day_to
        and (account_name is null or account = account_name)
    group by account, instance_id
)

select
    s.account,
    s.contract_type,
    s.contract_id,
    case when s.contract_type = 'instance' then s.contract_id end as instance_id,
    s.label,
    s.gpu_name,
    s.num_gpus,
    s.is_bid,
    s.host_id,
    s.instance_hours,
    s.gpu_hours,
    s.gpu_cost,
    s.storage_cost,
    s.bandwidth_cost,
    s.other_cost,
    s.total_cost,
    coalesce(i.idle_cost, 0) as idle_cost,
    s.total_cost / nullif(s.gpu_hours, 0) as cost_per_gpu_hour,
    s.cost_source,
    row_number() over (order by s.total_cost desc, s.contract_type, s.contract_id, s.account)
        as spend_rank,
    count(*) over () as contracts
from spend as s
left join idle as i
    on s.account = i.account and s.contract_id = i.instance_id and s.contract_type = 'instance'
