-- price_changes: one row per change of dph_base or dph_total between consecutive snapshots
-- of an instance (a NULL price on either side is not a change). Grain: (account,
-- instance_id, changed_at); `day` is the UTC day of the change. change_pct is the change
-- of dph_total in percent of the price before.
-- Prices rarely move, so changes are found from instance_day_summary: across midnight by
-- comparing a day's first prices with the last ones of the previous day the instance was
-- seen, and within a day by reading the snapshots only of instance-days whose prices were
-- not constant. An instance unlisted for whole days and back at another price is a change
-- at its first snapshot back, with previous_snapshot_at its last snapshot before the gap,
-- however long ago: for an instance's first day in the build window, the previous day
-- comes from `last_before`, which reads a few columns of the whole history before it, so
-- the result does not depend on where a build's window or chunks start.
-- materialized: daily (Parquet partitioned by account and day, rebuilt for changed days)
-- warehouse: table
with last_before as (
    -- each instance's last day seen before the window (NULL prices included, like lag)
    select
        account,
        instance_id,
        max(last_seen_at) as last_seen_at,
        arg_max_null(dph_base_last, day) as dph_base_last,
        arg_max_null(dph_total_last, day) as dph_total_last
    from instance_day_summary
    where day < getvariable('build_from')
    group by account, instance_id
),

days as (
    -- lag's default (the row before the window) is used only where the window has no
    -- earlier day of the instance
    select
        d.*,
        lag(d.last_seen_at, 1, b.last_seen_at) over w as previous_last_seen_at,
        lag(d.dph_base_last, 1, b.dph_base_last) over w as previous_dph_base,
        lag(d.dph_total_last, 1, b.dph_total_last) over w as previous_dph_total
    from instance_day_summary as d
    left join last_before as b
        on d.account = b.account and d.instance_id = b.instance_id
    where d.day between getvariable('build_from') and getvariable('build_to')
    window w as (partition by d.account, d.instance_id order by d.day)
),

across_midnight as (
    select
        account,
        day,
        instance_id,
        first_seen_at as changed_at,
        previous_last_seen_at as previous_snapshot_at,
        previous_dph_base as dph_base_before,
        dph_base_first as dph_base_after,
        previous_dph_total as dph_total_before,
        dph_total_first as dph_total_after
    from days
    where previous_last_seen_at is not null
        and (
            coalesce(dph_base_first <> previous_dph_base, false)
            or coalesce(dph_total_first <> previous_dph_total, false)
        )
),

moving_days as (
    select account, day, instance_id
    from days
    where dph_base_min <> dph_base_max or dph_total_min <> dph_total_max
),

within_day as (
    select
        s.account,
        s.snapshot_date as day,
        s.instance_id,
        s.snapshot_at as changed_at,
        lag(s.snapshot_at) over w as previous_snapshot_at,
        lag(s.dph_base) over w as dph_base_before,
        s.dph_base as dph_base_after,
        lag(s.dph_total) over w as dph_total_before,
        s.dph_total as dph_total_after
    from instance_snapshots as s
    inner join moving_days as m
        on s.account = m.account and s.snapshot_date = m.day and s.instance_id = m.instance_id
    where s.snapshot_date between getvariable('build_from') and getvariable('build_to')
    window w as (partition by s.account, s.instance_id, s.snapshot_date order by s.snapshot_at)
),

changes as (
    select * from across_midnight
    union all
    select * from within_day
    where previous_snapshot_at is not null
        and (
            coalesce(dph_base_after <> dph_base_before, false)
            or coalesce(dph_total_after <> dph_total_before, false)
        )
)

select
    c.account,
    c.day,
    c.instance_id,
    d.label,
    d.gpu_name,
    d.is_bid,
    c.changed_at,
    c.previous_snapshot_at,
    c.dph_base_before,
    c.dph_base_after,
    c.dph_total_before,
    c.dph_total_after,
    (c.dph_total_after - c.dph_total_before) / nullif(c.dph_total_before, 0) * 100.0
        as change_pct
from changes as c
left join days as d
    on c.account = d.account and c.day = d.day and c.instance_id = d.instance_id
