-- market_prices: what the market asked per GPU-hour, one row per (market snapshot,
-- gpu_name, offer_type). Grain: (snapshot_id, gpu_name, offer_type); no row where a
-- snapshot has no offer of that model and type. Over every offer the snapshot collected,
-- verified or not, one offer one value: the price per GPU-hour is dph_base / num_gpus for
-- on-demand and min_bid / num_gpus for bid (interruptible); an offer without that price
-- (or without GPUs) is left out, and `offers` counts those priced. Quantiles are linear
-- interpolation (quantile_cont; the median is 0.5). Only snapshots in the commit log
-- (market_snapshots) count: a snapshot whose log row is missing did not land whole.
-- The five quantiles come from one quantile_cont over a list of fractions: one sorted state
-- per group instead of five (five held a year of offers five times over, past 2 GB).
-- materialized: table
-- An incremental build recomputes the days from the first market day whose files changed
-- (market_changed_from): a snapshot's row depends on that snapshot's offers alone.
-- incremental rows: snapshot_date >= getvariable('market_changed_from')
-- incremental day: snapshot_date
with priced as (
    select
        o.snapshot_date,
        o.snapshot_id,
        o.snapshot_at,
        o.gpu_name,
        o.offer_type,
        case
            when o.offer_type = 'bid' then o.min_bid / o.num_gpus
            else o.dph_base / o.num_gpus
        end as per_gpu_hour
    from market_offers as o
    where o.snapshot_date >= getvariable('market_changed_from')
        and o.num_gpus > 0
        and o.gpu_name is not null
        and o.snapshot_id in (
            select snapshot_id from market_snapshots
            where snapshot_date >= getvariable('market_changed_from')
        )
),

grouped as (
    select
        snapshot_date,
        snapshot_id,
        snapshot_at,
        gpu_name,
        offer_type,
        count(*) as offers,
        min(per_gpu_hour) as min_per_gpu_hour,
        quantile_cont(per_gpu_hour, [0.10, 0.25, 0.50, 0.75, 0.90]) as q
    from priced
    where per_gpu_hour is not null
    group by snapshot_date, snapshot_id, snapshot_at, gpu_name, offer_type
)

select
    snapshot_date,
    snapshot_id,
    snapshot_at,
    gpu_name,
    offer_type,
    offers,
    min_per_gpu_hour,
    q[1] as p10_per_gpu_hour,
    q[2] as p25_per_gpu_hour,
    q[3] as median_per_gpu_hour,
    q[4] as p75_per_gpu_hour,
    q[5] as p90_per_gpu_hour
from grouped
