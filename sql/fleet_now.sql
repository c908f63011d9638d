-- fleet_now: the newest snapshot of each account, one row per instance listed in it.
-- Grain: (account, instance_id). burn_rate_per_hour is what the instance costs per hour now
-- under the billing rules of instance_snapshots (dph_base while gpu_billed, plus
-- storage_rate while storage_billed); burn_per_day = x24, burn_per_month = x730.
-- materialized: table
with newest as (
    -- every account's newest snapshot is on or after the day the build sets in
    -- `newest_snapshot_days_from`, so the older days of the log are not read
    select account, max(snapshot_at) as snapshot_at
    from snapshots
    where snapshot_date >= getvariable('newest_snapshot_days_from')
    group by account
),

rated as (
    select
        s.*,
        case when s.gpu_billed then coalesce(s.dph_base, 0) else 0.0 end
        + case when s.storage_billed then coalesce(s.storage_rate, 0) else 0.0 end
            as burn_rate_per_hour
    from instance_snapshots as s
    inner join newest as n on s.account = n.account and s.snapshot_at = n.snapshot_at
    where s.snapshot_date >= getvariable('newest_snapshot_days_from')
        and s.snapshot_date in (select cast(snapshot_at as date) from newest)
)

select
    account,
    snapshot_at,
    instance_id,
    label,
    gpu_name,
    num_gpus,
    machine_id,
    host_id,
    country,
    is_bid,
    actual_status,
    intended_status,
    gpu_util_fraction,
    dph_base,
    dph_total,
    storage_rate,
    burn_rate_per_hour,
    burn_rate_per_hour * 24 as burn_per_day,
    burn_rate_per_hour * 730 as burn_per_month,
    credit_balance
from rated
