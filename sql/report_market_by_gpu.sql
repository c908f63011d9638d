-- report_market_by_gpu: what the fleet paid per GPU-hour against the market over a window,
-- one row per (gpu_name, offer_type) the fleet rented with a market price (paid_vs_market).
-- Call: report_market_by_gpu(day_from, day_to, account_name := NULL).
-- gpu_hours, instance_hours: paid_vs_market summed; paid_per_gpu_hour: its
-- paid_per_gpu_hour weighted by gpu_hours; market_p25_per_gpu_hour,
-- market_median_per_gpu_hour, market_p75_per_gpu_hour: the mean over the window's market
-- snapshots of market_prices for that model and type (`market_snapshots`: how many);
-- premium_pct = 100 x (paid - median) / median; gpu_hours_above_median: the GPU-hours of
-- instance-days paid above that day's market median (paid_vs_market.premium_pct > 0), and
-- share_above_median their share of gpu_hours; instances: distinct instances; gpu_models:
-- how many rows; market_rank 1 = the most GPU-hours (ties by name, then type).
-- materialized: macro
-- macro: report_market_by_gpu(day_from, day_to, account_name := NULL)
with paid as (
    select
        gpu_name,
        offer_type,
        sum(gpu_hours) as gpu_hours,
        sum(instance_hours) as instance_hours,
        sum(paid_per_gpu_hour * gpu_hours) / sum(gpu_hours) as paid_per_gpu_hour,
        sum(case when premium_pct > 0 then gpu_hours else 0.0 end) as gpu_hours_above_median,
        count(distinct account || '/' || instance_id) as instances
    from paid_vs_market
    where day between day_from and day_to
        and (account_name is null or account = account_name)
    group by gpu_name, offer_type
),

market as (
    select
        gpu_name,
        offer_type,
        count(*) as market_snapshots,
        avg(p25_per_gpu_hour) as market_p25_per_gpu_hour,
        avg(median_per_gpu_hour) as market_median_per_gpu_hour,
        avg(p75_per_gpu_hour) as market_p75_per_gpu_hour
    from market_prices
    where snapshot_date between day_from and day_to
    group by gpu_name, offer_type
)

select
    p.gpu_name,
    p.offer_type,
    p.gpu_hours,
    p.instance_hours,
    p.instances,
    p.paid_per_gpu_hour,
    m.market_snapshots,
    m.market_p25_per_gpu_hour,
    m.market_median_per_gpu_hour,
    m.market_p75_per_gpu_hour,
    100.0 * (p.paid_per_gpu_hour - m.market_median_per_gpu_hour)
    / nullif(m.market_median_per_gpu_hour, 0) as premium_pct,
    p.gpu_hours_above_median,
    p.gpu_hours_above_median / p.gpu_hours as share_above_median,
    count(*) over () as gpu_models,
    row_number() over (order by p.gpu_hours desc, p.gpu_name, p.offer_type) as market_rank
from paid as p
inner join market as m on p.gpu_name = m.gpu_name and p.offer_type = m.offer_type
