-- market_prices_now: what the market asks per GPU-hour in the newest market snapshot, one
-- row per (gpu_name, offer_type) offered in it. Grain: (gpu_name, offer_type).
-- The market_prices row of the snapshot market_history calls newest
-- (`newest_snapshot_at`): `offers` priced, `p25_per_gpu_hour` and `median_per_gpu_hour`
-- (on-demand: dph_base / num_gpus; bid: min_bid / num_gpus; see market_prices). A model
-- or type missing from that snapshot has no row. No rows before the first market snapshot.
-- materialized: view
select
    p.snapshot_at,
    p.gpu_name,
    p.offer_type,
    p.offers,
    p.p25_per_gpu_hour,
    p.median_per_gpu_hour
from market_prices as p
inner join market_history as h on p.snapshot_at = h.newest_snapshot_at
where p.snapshot_date = cast(h.newest_snapshot_at as date)
