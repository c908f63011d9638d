-- incidents: one row per incident, a maximal run of consecutive down intervals of one
-- instance (`is_down`, defined in instance_states). Two down intervals are consecutive
-- when the second starts at the first one's next account snapshot. Grain: (account,
-- instance_id, started_at). `hours` is the observed down time (sum of the run's interval
-- hours, so capped gaps are not counted); `ended_at` is the end of the run's last
-- interval. `is_ongoing`: the instance is still listed in its account's newest snapshot
-- and still down there, right after the run (is_down there: `is_not_running_as_meant`,
-- NULL status included, the starting phase having ended before the run). The attributes
-- (label .. country) are the latest non-NULL values among the run's intervals: the
-- instance as it was during the incident (instance_latest has it as it is now).
-- materialized: table
-- An incremental build (the history only grew at its end) keeps the incidents that ended
-- before the first recomputed day and are not ongoing: their intervals all start before
-- that day, so they are unchanged, and a run can grow only from its newest snapshot, which
-- only an ongoing incident ends at. It recomputes the others from the down intervals of
-- the days from the earliest start among them (`recompute_from`).
-- incremental rows: ended_at >= getvariable('changed_from') or is_ongoing
-- incremental day: cast(started_at as date)
with down as (
    select
        account,
        instance_id,
        interval_start,
        interval_end,
        next_snapshot_at,
        hours,
        coalesce(actual_status, '(none)') as status,
        label,
        gpu_name,
        machine_id,
        host_id,
        country,
        coalesce(
            lag(next_snapshot_at) over (
                partition by account, instance_id order by interval_start
            ) = interval_start,
            false
        ) as continues_run
    from instance_intervals
    where is_down and day >= getvariable('recompute_from')
),

numbered as (
    select
        *,
        sum(case when continues_run then 0 else 1 end) over (
            partition by account, instance_id order by interval_start
            rows between unbounded preceding and current row
        ) as run_no
    from down
),

runs as (
    select
        account,
        instance_id,
        run_no,
        min(interval_start) as started_at,
        max(interval_end) as ended_at,
        max(next_snapshot_at) as run_next_snapshot_at,
        sum(hours) as hours,
        count(*) as intervals,
        list_sort(list(distinct status)) as statuses,
        max_by(label, interval_start) as label,
        max_by(gpu_name, interval_start) as gpu_name,
        max_by(machine_id, interval_start) as machine_id,
        max_by(host_id, interval_start) as host_id,
        max_by(country, interval_start) as country
    from numbered
    group by account, instance_id, run_no
),

newest_account_snapshot as (
    -- on or after `newest_snapshot_days_from` (see fleet_now)
    select account, max(snapshot_at) as snapshot_at
    from snapshots
    where snapshot_date >= getvariable('newest_snapshot_days_from')
    group by account
),

newest_instance_state as (
    select
        account,
        instance_id,
        max(last_seen_at) as last_seen_at,
        arg_max(last_not_running_as_meant, day) as last_not_running_as_meant
    from instance_day_summary
    -- an instance in its account's newest snapshot was seen on or after recompute_from
    where day >= getvariable('recompute_from')
    group by account, instance_id
)

select
    r.account,
    r.instance_id,
    r.label,
    r.gpu_name,
    r.machine_id,
    r.host_id,
    r.country,
    r.started_at,
    r.ended_at,
    r.hours,
    r.intervals,
    r.statuses,
    coalesce(
        r.run_next_snapshot_at = a.snapshot_at
        and st.last_seen_at = a.snapshot_at
        and st.last_not_running_as_meant,
        false
    ) as is_ongoing
from runs as r
left join newest_account_snapshot as a on r.account = a.account
left join newest_instance_state as st
    on r.account = st.account and r.instance_id = st.instance_id
