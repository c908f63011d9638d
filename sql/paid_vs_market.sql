-- paid_vs_market: what each instance paid per GPU-hour against the market that day, one
-- row per (day, account, instance_id) with GPU-billed time that day (instance_daily) and a
-- market price for its GPU model and type that day. Grain: (day, account, instance_id).
-- offer_type: 'bid' for an interruptible instance (is_bid), else 'on-demand'; the market
-- side is market_prices of that gpu_name and offer_type.
-- instance_hours: hours the GPU was billed (instance_daily.running_hours); gpu_hours:
-- instance_daily.gpu_hours (x num_gpus). paid_per_gpu_hour: the instance's dph_base /
-- num_gpus weighted by its billed hours that day (instance_daily.gpu_cost / gpu_hours,
-- gpu_cost being dph_base x billed hours). market_median_per_gpu_hour,
-- market_p25_per_gpu_hour, market_p75_per_gpu_hour: the mean over that day's market
-- snapshots with a market_prices row for it (`market_snapshots`: how many);
-- premium_pct = 100 x (paid - median) / median. An instance the market did not list its
-- GPU model for that day has no row.
-- materialized: table
-- An incremental build recomputes the days from the first recomputed day of the instance
-- history (changed_from) or the first changed market day, whichever is earlier: an older
-- day has the same instance-day and the same market snapshots.
-- incremental rows: day >= least(getvariable('changed_from'), getvariable('market_changed_from'))
-- incremental day: day
with since as (
    select least(getvariable('recompute_from'), getvariable('market_changed_from')) as day
),

market_day as (
    select
        snapshot_date as day,
        gpu_name,
        offer_type,
        count(*) as market_snapshots,
        avg(median_per_gpu_hour) as market_median_per_gpu_hour,
        avg(p25_per_gpu_hour) as market_p25_per_gpu_hour,
        avg(p75_per_gpu_hour) as market_p75_per_gpu_hour
    from market_prices
    where snapshot_date >= (select day from since)
    group by snapshot_date, gpu_name, offer_type
),

billed as (
    select
        day,
        account,
        instance_id,
        label,
        gpu_name,
        num_gpus,
        case when coalesce(is_bid, false) then 'bid' else 'on-demand' end as offer_type,
        running_hours as instance_hours,
        gpu_hours,
        gpu_cost / gpu_hours as paid_per_gpu_hour
    from instance_daily
    where day >= (select day from since)
        and running_hours > 0
        and gpu_hours > 0
        and gpu_name is not null
)

select
    b.day,
    b.account,
    b.instance_id,
    b.label,
    b.gpu_name,
    b.num_gpus,
    b.offer_type,
    b.instance_hours,
    b.gpu_hours,
    b.paid_per_gpu_hour,
    m.market_snapshots,
    m.market_median_per_gpu_hour,
    m.market_p25_per_gpu_hour,
    m.market_p75_per_gpu_hour,
    100.0 * (b.paid_per_gpu_hour - m.market_median_per_gpu_hour)
    / nullif(m.market_median_per_gpu_hour, 0) as premium_pct
from billed as b
inner join market_day as m
    on b.day = m.day and b.gpu_name = m.gpu_name and b.offer_type = m.offer_type
