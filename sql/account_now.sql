-- account_now: each account as its newest snapshot shows it, one row per account.
-- Grain: account (every account with at least one snapshot, even one that listed no
-- instance). The account-level figures live here and only here; fleet_now has the
-- per-instance rows they add up.
-- `snapshot_at`: the account's newest snapshot. `instances_listed`, `instances_running`
-- (actual status running) and `gpus_running` (their num_gpus) count fleet_now's rows.
-- `credit_balance`: the account's credit in $ as the API reported it on the instance rows
-- of that snapshot (`credit_balance` of /instances, the same on every row; NULL when it
-- listed no instance or none carried it). `burn_rate_per_hour`: the sum of fleet_now.burn_rate_per_hour (0 when
-- nothing is listed), split into `gpu_burn_rate_per_hour` and
-- `storage_burn_rate_per_hour`; `burn_per_day` = x24 and `burn_per_month` = x730 (hours
-- in an average month), defined nowhere else. `runway_hours`: how long the credit lasts
-- at that burn rate (credit / burn rate, 0 when the credit is not positive), NULL when
-- the burn rate is 0 or the credit unknown; `runway_days` = runway_hours / 24 and
-- `runway_seconds` = runway_hours x 3600 (the unit Prometheus takes);
-- `credit_runs_out_at` = snapshot_at + runway_hours.
-- materialized: table
with newest as (
    -- every account's newest snapshot is on or after `newest_snapshot_days_from`
    select account, max(snapshot_at) as snapshot_at
    from snapshots
    where snapshot_date >= getvariable('newest_snapshot_days_from')
    group by account
),

credit as (
    -- the API reports the account's balance on each instance row (instance_snapshots);
    -- fleet_now leaves it out so that no sum over instances counts it twice
    select s.account, max(s.credit_balance) as credit_balance
    from instance_snapshots as s
    inner join newest as n on s.account = n.account and s.snapshot_at = n.snapshot_at
    where s.snapshot_date >= getvariable('newest_snapshot_days_from')
        and s.snapshot_date in (select cast(snapshot_at as date) from newest)
    group by s.account
),

fleet as (
    select
        account,
        count(*) as instances_listed,
        count(case when actual_status = 'running' then 1 end) as instances_running,
        coalesce(sum(case when actual_status = 'running' then num_gpus end), 0)
            as gpus_running,
        sum(burn_rate_per_hour) as burn_rate_per_hour,
        sum(gpu_burn_rate_per_hour) as gpu_burn_rate_per_hour,
        sum(storage_burn_rate_per_hour) as storage_burn_rate_per_hour
    from fleet_now
    group by account
),

burning as (
    select
        n.account,
        n.snapshot_at,
        coalesce(f.instances_listed, 0) as instances_listed,
        coalesce(f.instances_running, 0) as instances_running,
        coalesce(f.gpus_running, 0) as gpus_running,
        cast(c.credit_balance as double) as credit_balance,
        cast(coalesce(f.burn_rate_per_hour, 0) as double) as burn_rate_per_hour,
        cast(coalesce(f.gpu_burn_rate_per_hour, 0) as double) as gpu_burn_rate_per_hour,
        cast(coalesce(f.storage_burn_rate_per_hour, 0) as double)
            as storage_burn_rate_per_hour
    from newest as n
    left join fleet as f on n.account = f.account
    left join credit as c on n.account = c.account
),

runway as (
    select
        *,
        case
            when burn_rate_per_hour > 0 and credit_balance is not null
                then greatest(credit_balance, 0.0) / burn_rate_per_hour
        end as runway_hours
    from burning
)

select
    account,
    snapshot_at,
    instances_listed,
    instances_running,
    gpus_running,
    credit_balance,
    burn_rate_per_hour,
    gpu_burn_rate_per_hour,
    storage_burn_rate_per_hour,
    burn_rate_per_hour * 24 as burn_per_day,
    burn_rate_per_hour * 730 as burn_per_month,
    runway_hours,
    runway_hours / 24 as runway_days,
    runway_hours * 3600 as runway_seconds,
    snapshot_at + runway_hours * interval '1 hour' as credit_runs_out_at
from runway
