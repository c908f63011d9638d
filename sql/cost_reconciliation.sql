-- cost_reconciliation: the bill against the estimate, one row per (day, account,
-- instance_id) present in billed_daily (instance contracts) or estimated_cost_daily.
-- estimated_cost: estimated_cost_daily.total_cost (NULL when no snapshot saw the instance that day,
-- never 0); billed_cost: billed_daily.total_cost (NULL when not billed); difference =
-- billed - estimated; difference_pct = 100 x difference / billed_cost; bandwidth_cost is
-- the bill's (snapshots carry no byte counters, so the estimate has none).
-- coverage: the share of the UTC day covered by the account's snapshot intervals (each at
-- most the cap long), 0..1. day_billed: a bill of the account-day is stored; is_final:
-- that bill was fetched more than 48 hours after the day ended.
-- status: matched (|difference| <= max($0.01, 1 % of the bill)), differs, billed_only,
-- estimated_only. likely_reason (NULL when matched), first that applies:
-- 'bill not fetched yet', 'not in the bill' (estimated_only); 'no snapshot covered the day
-- (collection was not running)', 'never seen by a snapshot (shorter than a snapshot
-- interval)', 'missed collection (low coverage)', 'not seen that
-- day' (billed_only); 'bandwidth (not in snapshots)', 'missed collection (low coverage)',
-- 'price change between snapshots', 'state changes between snapshots' (differs).
-- materialized: table
-- An incremental build (the history only grew at its end) recomputes the days from the
-- first recomputed day or the first day whose bill changed, whichever is earlier: an older
-- day has the same bill, estimate, coverage and price changes. And, on any day, the
-- billed-only rows of the instances seen since the first recomputed day: whether an
-- instance was ever seen by a snapshot changes only for them. All the rows it recomputes
-- are on or after recompute_from, so it reads no older bill, estimate or snapshot.
-- incremental rows: day >= least(getvariable('changed_from'), getvariable('bills_changed_from')) or (estimated_cost is null and (account, instance_id) in (select account, instance_id from instance_day_summary where day >= getvariable('changed_from')))
-- incremental day: day
with account_next as (
    select
        account,
        snapshot_at as s,
        lead(snapshot_at) over (partition by account order by snapshot_at) as next_at
    from snapshots
    -- intervals that can cover a day from recompute_from on (capped at the context)
    where snapshot_date >= getvariable('recompute_from') - getvariable('context_days')
),

account_intervals as (
    -- the newest snapshot has no interval yet (as in instance_intervals)
    select account, s, least(next_at, s + to_minutes(getvariable('cap_minutes'))) as e
    from account_next
    where next_at is not null
),

coverage as (
    select
        account,
        cast(d.day_start as date) as day,
        sum(epoch(least(e, d.day_start + interval 1 day) - greatest(s, d.day_start)))
        / 86400.0 as coverage
    from account_intervals,
        lateral (
            select unnest(generate_series(date_trunc('day', s), e - interval 1 microsecond,
                                          interval 1 day)) as day_start
        ) as d
    where e > s
    group by all
),

billed as (
    select * from billed_daily
    where contract_type = 'instance' and instance_id is not null
        and day >= getvariable('recompute_from')
),

estimated as (
    select * from estimated_cost_daily where day >= getvariable('recompute_from')
),

joined as (
    select
        coalesce(b.day, c.day) as day,
        coalesce(b.account, c.account) as account,
        coalesce(b.instance_id, c.instance_id) as instance_id,
        coalesce(b.label, c.label) as label,
        c.total_cost as estimated_cost,
        b.total_cost as billed_cost,
        b.bandwidth_cost
    from billed as b
    full outer join estimated as c
        on b.day = c.day and b.account = c.account and b.instance_id = c.instance_id
),

seen as (
    select distinct account, instance_id from instance_day_summary
),

price_moved as (
    select distinct account, day, instance_id from price_changes
    where day >= getvariable('recompute_from')
),

facts as (
    select
        j.*,
        j.billed_cost - j.estimated_cost as difference,
        coalesce(cv.coverage, 0.0) as coverage,
        d.account is not null as day_billed,
        coalesce(d.is_final, false) as is_final,
        s.instance_id is not null as ever_seen,
        p.instance_id is not null as price_changed
    from joined as j
    left join coverage as cv on j.account = cv.account and j.day = cv.day
    left join billed_days as d on j.account = d.account and j.day = d.day
    left join seen as s on j.account = s.account and j.instance_id = s.instance_id
    left join price_moved as p
        on j.account = p.account and j.day = p.day and j.instance_id = p.instance_id
),

classified as (
    select
        *,
        case
            when billed_cost is null then 'estimated_only'
            when estimated_cost is null then 'billed_only'
            when abs(difference) <= greatest(0.01, 0.01 * abs(billed_cost)) then 'matched'
            else 'differs'
        end as status
    from facts
)

select
    day,
    account,
    instance_id,
    label,
    estimated_cost,
    billed_cost,
    difference,
    100.0 * difference / nullif(billed_cost, 0) as difference_pct,
    bandwidth_cost,
    coverage,
    day_billed,
    is_final,
    status,
    case
        when status = 'matched' then null
        when status = 'estimated_only' and not day_billed then 'bill not fetched yet'
        when status = 'estimated_only' then 'not in the bill'
        when status = 'billed_only' then
            case
                when coverage = 0 then 'no snapshot covered the day (collection was not running)'
                when not ever_seen
                    then 'never seen by a snapshot (shorter than a snapshot interval)'
                when coverage < 0.95 then 'missed collection (low coverage)'
                else 'not seen that day'
            end
        when bandwidth_cost > 0
            and abs(difference - bandwidth_cost) <= greatest(0.01, 0.01 * abs(billed_cost))
            then 'bandwidth (not in snapshots)'
        when coverage < 0.95 then 'missed collection (low coverage)'
        when price_changed then 'price change between snapshots'
        else 'state changes between snapshots'
    end as likely_reason
from classified
