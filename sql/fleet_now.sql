-- fleet_now: the newest snapshot of each account, one row per instance listed in it.
-- Grain: (account, instance_id). `burn_rate_per_hour` is what the instance costs per hour
-- now: instance_snapshots' burn rate at the newest snapshot, `gpu_burn_rate_per_hour`
-- (dph_base while gpu_billed) plus `storage_burn_rate_per_hour` (storage_rate while
-- storage_billed). `gpu_util_fraction`, `reliability2` (Vast.ai's host score) and
-- `gpu_idle` (the idle rule of instance_snapshots) as that snapshot saw them; the
-- reliability state `is_starting`, `is_up`, `is_down` is instance_states' (the one
-- definition the reliability models read): an instance neither up nor down is starting or
-- not meant to run.
-- Account-level figures (the credit balance, the account's burn rate per hour, day and
-- month, the runway) are in account_now, one row per account: the balance is the
-- account's, so it is not repeated on each instance row where a sum would count it again.
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
    select s.*
    from instance_states as s
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
    gpu_burn_rate_per_hour,
    storage_burn_rate_per_hour,
    reliability2,
    gpu_idle,
    is_starting,
    is_up,
    is_down
from rated
