-- savings_opportunities: instances that could run cheaper on an offer of the newest market
-- snapshot, at most one row per instance: its best offer. Grain: (account, instance_id).
-- Instances: those whose row in their account's newest snapshot (fleet_now) is running and
-- not interruptible, with its reliability2 and disk_space from that row (a NULL
-- reliability2 or disk_space gives no row). current_per_hour: what it costs per hour by the
-- cost models' own rates, fleet_now.burn_rate_per_hour (dph_base + its storage rate while
-- running, instance_snapshots' rule).
-- Offers that qualify, in the newest market snapshot t: same gpu_name and num_gpus,
-- on-demand, verification 'verified', reliability >= the instance's reliability2,
-- disk_space >= its disk_space, not on its own machine_id (other machines of the fleet
-- may be offered), and persistent: its (machine_id, num_gpus, offer_type) was offered at no
-- more than its newest price in at least `[market] min_seen_share` of all the market
-- snapshots in (t - `[market] lookback_hours`, t] (`seen_share`). An offer's price per hour
-- at the instance's disk: dph_base + storage_cost x disk_space / 720, the same way in every
-- snapshot. The best offer: lowest offer_per_hour, then higher reliability, then lower
-- machine_id (then lower offer id). One offer may be the best for several instances.
-- A row only where monthly_savings = (current - offer) x 730 > `[market]
-- min_monthly_savings` and savings_pct = 100 x (current - offer) / current > `[market]
-- min_savings_pct`; none at all while the market history spans less than the lookback
-- (market_history.has_lookback). offer_id: the offer's id at t (ids change when rented).
-- The build sets `market_newest_day` (the commit log's newest day), so that only the files
-- of the lookback's days are read, not a year of offers.
-- materialized: table
with newest as (
    select newest_snapshot_at as t, lookback_hours
    from market_history
    where has_lookback
),

window_snapshots as (
    -- every market snapshot of the lookback window, offers or not
    select s.snapshot_id
    from market_snapshots as s, newest as n
    where s.snapshot_date >= getvariable('market_newest_day')
        - cast(ceil({{ market_lookback_hours }} / 24.0) + 1 as integer)
        and epoch(s.snapshot_at) > epoch(n.t) - 3600.0 * n.lookback_hours
        and s.snapshot_at <= n.t
),

window_offers as (
    select o.*
    from market_offers as o, newest as n
    where o.snapshot_date >= getvariable('market_newest_day')
        - cast(ceil({{ market_lookback_hours }} / 24.0) + 1 as integer)
        and o.offer_type = 'on-demand'
        and o.snapshot_id in (select snapshot_id from window_snapshots)
),

instances as (
    select
        f.account,
        f.instance_id,
        f.label,
        f.gpu_name,
        f.num_gpus,
        f.machine_id,
        s.reliability2,
        s.disk_space,
        f.burn_rate_per_hour as current_per_hour
    from fleet_now as f
    inner join instance_snapshots as s
        on f.account = s.account and f.instance_id = s.instance_id
        and f.snapshot_at = s.snapshot_at
    where s.snapshot_date >= getvariable('newest_snapshot_days_from')
        and f.actual_status = 'running'
        and not coalesce(f.is_bid, false)
        and s.reliability2 is not null
        and s.disk_space is not null
        and f.dph_base is not null
),

candidates as (
    -- each instance's qualifying offers at t, priced at its disk
    select
        i.*,
        o.offer_id,
        o.machine_id as offer_machine_id,
        o.host_id as offer_host_id,
        o.reliability as offer_reliability,
        o.geolocation as offer_geolocation,
        o.dph_base + o.storage_cost * i.disk_space / 720.0 as offer_per_hour
    from instances as i
    inner join window_offers as o
        on o.gpu_name = i.gpu_name and o.num_gpus = i.num_gpus
    where o.snapshot_at = (select t from newest)
        and o.verification = 'verified'
        and o.reliability >= i.reliability2
        and o.disk_space >= i.disk_space
        and o.machine_id is distinct from i.machine_id
        and o.dph_base is not null
        and o.storage_cost is not null
),

seen as (
    -- in how many window snapshots each candidate's machine was offered at no more than
    -- its price at t (same machine, GPU count and type; any offer id)
    select
        c.account,
        c.instance_id,
        c.offer_id,
        count(distinct w.snapshot_id) as snapshots_seen
    from candidates as c
    inner join window_offers as w
        on w.machine_id = c.offer_machine_id and w.num_gpus = c.num_gpus
        and w.gpu_name = c.gpu_name
    where w.dph_base + w.storage_cost * c.disk_space / 720.0 <= c.offer_per_hour
    group by c.account, c.instance_id, c.offer_id
),

persistent as (
    select
        c.*,
        s.snapshots_seen / (select count(*) from window_snapshots) as seen_share
    from candidates as c
    inner join seen as s
        on c.account = s.account and c.instance_id = s.instance_id and c.offer_id = s.offer_id
    where s.snapshots_seen / (select count(*) from window_snapshots) >= {{ market_min_seen_share }}
),

best as (
    select
        *,
        row_number() over (
            partition by account, instance_id
            order by offer_per_hour, offer_reliability desc, offer_machine_id, offer_id
        ) as offer_rank
    from persistent
)

select
    account,
    instance_id,
    label,
    gpu_name,
    num_gpus,
    reliability2,
    disk_space,
    current_per_hour,
    offer_id,
    offer_machine_id,
    offer_host_id,
    offer_per_hour,
    offer_reliability,
    offer_geolocation,
    seen_share,
    (current_per_hour - offer_per_hour) * 730 as monthly_savings,
    100.0 * (current_per_hour - offer_per_hour) / current_per_hour as savings_pct
from best
where offer_rank = 1
    and (current_per_hour - offer_per_hour) * 730 > {{ market_min_monthly_savings }}
    and 100.0 * (current_per_hour - offer_per_hour) / current_per_hour
    > {{ market_min_savings_pct }}
