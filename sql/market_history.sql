-- market_history: how much market history there is, one row (none before the first market
-- snapshot). Grain: the whole market. `snapshots`: market snapshots in the commit log;
-- `oldest_snapshot_at`, `newest_snapshot_at`; `span_hours`: oldest to newest, in hours;
-- `lookback_hours`: the `[market] lookback_hours` setting the savings advice looks back
-- over; `has_lookback`: span_hours >= lookback_hours (savings_opportunities has rows only
-- then); `lookback_snapshots`: snapshots in the lookback window (t - lookback_hours, t],
-- t the newest snapshot (the persistence test's denominator); `min_seen_share`,
-- `min_monthly_savings`, `min_savings_pct`: the other `[market]` thresholds the advice
-- applies, so a reader states them from here.
-- materialized: table
with log as (
    select snapshot_at from market_snapshots
),

bounds as (
    select count(*) as snapshots, min(snapshot_at) as oldest, max(snapshot_at) as newest
    from log
)

select
    b.snapshots,
    b.oldest as oldest_snapshot_at,
    b.newest as newest_snapshot_at,
    (epoch(b.newest) - epoch(b.oldest)) / 3600.0 as span_hours,
    cast({{ market_lookback_hours }} as double) as lookback_hours,
    (epoch(b.newest) - epoch(b.oldest)) / 3600.0 >= {{ market_lookback_hours }} as has_lookback,
    (
        select count(*) from log as l
        where epoch(l.snapshot_at) > epoch(b.newest) - 3600.0 * {{ market_lookback_hours }}
    ) as lookback_snapshots,
    cast({{ market_min_seen_share }} as double) as min_seen_share,
    cast({{ market_min_monthly_savings }} as double) as min_monthly_savings,
    cast({{ market_min_savings_pct }} as double) as min_savings_pct
from bounds as b
where b.snapshots > 0
