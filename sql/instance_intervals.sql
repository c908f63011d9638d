-- instance_intervals: one row per instance per snapshot that has a next account snapshot.
-- Grain: (account, instance_id, interval_start); `day` is the UTC day the interval starts.
-- The interval runs from the snapshot to the account's next successful snapshot (whether
-- or not the instance is still listed there), capped at twice the cadence; time past the
-- cap is unobserved. The state seen at the start holds for the whole interval.
-- The cap is `getvariable('cap_minutes')`, which the build sets to
-- pipeline.warehouse.models.interval_cap_minutes(cadence): the same bound the fresh_snapshots check
-- allows since an account's newest snapshot.
-- Rates ($/hour) and what is billed come from instance_snapshots (the billing rules and
-- the burn rates are written there): cost = burn rate x hours, so GPU cost = dph_base
-- while gpu_billed, storage cost = storage_rate while storage_billed. `gpu_idle` (the GPU
-- idle for the interval) is instance_snapshots' idle rule at the interval's start, which
-- instance_daily, idle_spend and the idle_gpu alert read. The reliability flags
-- is_starting, is_up and is_down are those of instance_states (defined there) at the
-- interval's start. Join `snapshots` on (account, interval_start = snapshot_at) for the
-- snapshot's id.
-- materialized: daily (Parquet partitioned by account and day, rebuilt for changed days)
-- The joins run in the order written: DuckDB estimates the window's snapshots joined to
-- the timeline at the timeline's size and would build its hash table on millions of rows
-- (1.4x slower a chunk).
-- duckdb: disabled_optimizers = 'join_order'
with account_timeline as (
    select account, snapshot_at
    from snapshots
    where snapshot_date between getvariable('build_from')
        and getvariable('build_to') + getvariable('context_days')
),

first_after_timeline as (
    -- an account's next snapshot after days without any (a collector down for days) lies
    -- past the timeline: without it the interval of the last snapshot before the gap would
    -- depend on where a build's window or chunk ends
    select account, min(snapshot_at) as snapshot_at
    from snapshots
    where snapshot_date > getvariable('build_to') + getvariable('context_days')
    group by account
),

next_account_snapshot as (
    select
        t.account,
        t.snapshot_at,
        coalesce(
            lead(t.snapshot_at) over (partition by t.account order by t.snapshot_at),
            f.snapshot_at
        ) as next_snapshot_at
    from account_timeline as t
    left join first_after_timeline as f on t.account = f.account
),

observed as (
    select
        s.*,
        n.next_snapshot_at,
        least(
            n.next_snapshot_at, s.snapshot_at + to_minutes(getvariable('cap_minutes'))
        ) as interval_end
    from instance_states as s
    inner join next_account_snapshot as n
        on s.account = n.account and s.snapshot_at = n.snapshot_at
    where s.snapshot_date between getvariable('build_from') and getvariable('build_to')
        and n.next_snapshot_at is not null
),

timed as (
    select
        *,
        (epoch(interval_end) - epoch(snapshot_at)) / 3600.0 as hours
    from observed
)

select
    account,
    snapshot_date as day,
    instance_id,
    snapshot_at as interval_start,
    interval_end,
    next_snapshot_at,
    hours,
    next_snapshot_at > interval_end as is_capped,
    actual_status,
    intended_status,
    label,
    gpu_name,
    num_gpus,
    machine_id,
    host_id,
    country,
    is_bid,
    gpu_util_fraction,
    reliability2,
    dph_base,
    dph_total,
    dph_base as gpu_rate,
    storage_rate,
    gpu_billed,
    storage_billed,
    gpu_idle,
    gpu_burn_rate_per_hour * hours as gpu_cost,
    storage_burn_rate_per_hour * hours as storage_cost,
    burn_rate_per_hour * hours as total_cost,
    is_starting,
    is_up,
    is_down
from timed
