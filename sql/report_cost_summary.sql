-- report_cost_summary: the cost report's headline figures for one window, one row.
-- Call: report_cost_summary(day_from, day_to, account_name := NULL): UTC days, both
-- included; account_name NULL = every account. The report, the demo's console and an
-- analyst read the same columns:
-- spend_total .. other_cost: spend_daily summed over the window (the bill where an
-- account-day has one, every contract; the estimate elsewhere, instances only);
-- billed_cost / estimated_cost split it by cost_source; billed_days, billed_through,
-- estimated_from and bills_all_final say which days are which; bills_stored_days counts
-- every stored bill day of the accounts, in or out of the window.
-- instance_cost: the instance contracts' part (volumes and other contracts have no GPU);
-- cost_per_gpu_hour = instance_cost / gpu_hours (gpu_hours = hours x GPU count);
-- instance_hours are hours with the GPU billed, not x GPU count; instances counts the
-- instance contracts with spend, contracts every contract.
-- idle_cost (idle_stopped_storage_cost + idle_gpu_cost, from idle_spend, always an
-- estimate) and idle_share = idle_cost / spend_total; gpu_share = gpu_cost / spend_total.
-- month_to_date: spend from the first of day_to's month to day_to. burn_* and
-- credit_balance: account_now summed over the accounts (as of burn_as_of, their newest
-- snapshot); runway_hours: the shortest runway among them (runway_account).
-- projected_month = month_to_date + burn_rate_per_hour x hours_left_in_month, counted from
-- the end of the data (the newest snapshot, or the window's end when that is earlier) to
-- the end of day_to's month.
-- materialized: macro
-- macro: report_cost_summary(day_from, day_to, account_name := NULL)
with spend as (
    select *
    from spend_daily
    where
        day between day_from and day_to
        and (account_name is null or account = account_name)
),

totals as (
    select
        coalesce(sum(total_cost), 0) as spend_total,
        coalesce(sum(gpu_cost), 0) as gpu_cost,
        coalesce(sum(storage_cost), 0) as storage_cost,
        coalesce(sum(bandwidth_cost), 0) as bandwidth_cost,
        coalesce(sum(other_cost), 0) as other_cost,
        coalesce(sum(case when cost_source = 'billed' then total_cost end), 0) as billed_cost,
        coalesce(sum(case when cost_source = 'estimated' then total_cost end), 0)
            as estimated_cost,
        count(distinct case when cost_source = 'billed' then day end) as billed_days,
        max(case when cost_source = 'billed' then day end) as billed_through,
        min(case when cost_source = 'estimated' then day end) as estimated_from,
        bool_and(case when cost_source = 'billed' then is_final end) as bills_all_final,
        coalesce(sum(case when contract_type = 'instance' then total_cost end), 0)
            as instance_cost,
        coalesce(sum(gpu_hours), 0) as gpu_hours,
        coalesce(sum(instance_hours), 0) as instance_hours,
        count(distinct case when contract_type = 'instance' then account || '/' || contract_id end)
            as instances,
        count(distinct account || '/' || contract_type || '/' || contract_id) as contracts
    from spend
),

idle as (
    select
        coalesce(sum(idle_cost), 0) as idle_cost,
        coalesce(sum(stopped_storage_cost), 0) as idle_stopped_storage_cost,
        coalesce(sum(idle_gpu_cost), 0) as idle_gpu_cost
    from idle_spend
    where
        day between day_from and day_to
        and (account_name is null or account = account_name)
),

month as (
    select coalesce(sum(total_cost), 0) as month_to_date
    from spend_daily
    where
        day between date_trunc('month', cast(day_to as date)) and day_to
        and (account_name is null or account = account_name)
),

bills as (
    select count(*) as bills_stored_days
    from billed_days
    where account_name is null or account = account_name
),

burn as (
    select
        coalesce(sum(burn_rate_per_hour), 0) as burn_rate_per_hour,
        coalesce(sum(burn_per_day), 0) as burn_per_day,
        coalesce(sum(burn_per_month), 0) as burn_per_month,
        max(snapshot_at) as burn_as_of,
        coalesce(sum(instances_running), 0) as instances_running,
        sum(credit_balance) as credit_balance,
        min(runway_hours) as runway_hours,
        arg_min(account, runway_hours) as runway_account
    from account_now
    where account_name is null or account = account_name
),

bounds as (
    select
        cast(date_trunc('month', cast(day_to as date)) as timestamptz) as month_start,
        cast(date_trunc('month', cast(day_to as date)) + interval 1 month as timestamptz)
            as month_end,
        cast(cast(day_to as date) + interval 1 day as timestamptz) as window_end
),

left_in_month as (
    -- the data ends at the newest snapshot, or at the window's end when that is earlier
    select
        epoch(bd.month_end - greatest(least(bd.window_end, coalesce(u.burn_as_of, bd.window_end)),
                                      bd.month_start)) / 3600.0 as hours_left_in_month
    from bounds as bd, burn as u
)

select
    cast(day_from as date) as window_from,
    cast(day_to as date) as window_to,
    datediff('day', cast(day_from as date), cast(day_to as date)) + 1 as window_days,
    t.spend_total,
    t.spend_total / (datediff('day', cast(day_from as date), cast(day_to as date)) + 1)
        as spend_per_day,
    t.gpu_cost,
    t.storage_cost,
    t.bandwidth_cost,
    t.other_cost,
    t.gpu_cost / nullif(t.spend_total, 0) as gpu_share,
    t.billed_cost,
    t.estimated_cost,
    t.billed_days,
    t.billed_through,
    t.estimated_from,
    t.bills_all_final,
    b.bills_stored_days,
    t.instance_cost,
    t.gpu_hours,
    t.instance_hours,
    t.instance_cost / nullif(t.gpu_hours, 0) as cost_per_gpu_hour,
    t.instances,
    t.contracts,
    i.idle_cost,
    i.idle_stopped_storage_cost,
    i.idle_gpu_cost,
    coalesce(i.idle_cost / nullif(t.spend_total, 0), 0) as idle_share,
    cast(bd.month_start as date) as month_from,
    m.month_to_date,
    u.burn_rate_per_hour,
    u.burn_per_day,
    u.burn_per_month,
    u.burn_as_of,
    u.instances_running,
    u.credit_balance,
    u.runway_hours,
    u.runway_hours / 24 as runway_days,
    u.runway_account,
    p.hours_left_in_month,
    m.month_to_date + u.burn_rate_per_hour * p.hours_left_in_month as projected_month
from totals as t, idle as i, month as m, bills as b, burn as u, bounds as bd, left_in_month as p
