-- reliability_daily: observed reliability per UTC day per instance. Grain: (day, account,
-- instance_id). Hours are split at UTC midnight; only time intended 'running' counts as
-- up, down or starting. incidents_started / incident_hours_started: incidents (see
-- `incidents`) that started that day and their whole observed down time.
-- materialized: table
-- An incremental build recomputes the days from the earliest start of an incident it
-- recomputed (`incidents_recomputed_from`, never after the first recomputed day): older
-- days have the same instance_daily rows and the same incidents.
-- incremental rows: day >= getvariable('incidents_recomputed_from')
-- incremental day: day
with started as (
    select
        account,
        instance_id,
        cast(started_at as date) as day,
        count(*) as incidents_started,
        sum(hours) as incident_hours_started
    from incidents
    group by account, instance_id, cast(started_at as date)
)

select
    d.day,
    d.account,
    d.instance_id,
    d.label,
    d.gpu_name,
    d.machine_id,
    d.host_id,
    d.country,
    d.observed_hours,
    d.up_hours,
    d.down_hours,
    d.starting_hours,
    d.up_hours / nullif(d.up_hours + d.down_hours, 0) as availability,
    coalesce(s.incidents_started, 0) as incidents_started,
    coalesce(s.incident_hours_started, 0.0) as incident_hours_started,
    d.reliability2_min,
    d.reliability2_last
from instance_daily as d
left join started as s
    on d.account = s.account and d.instance_id = s.instance_id and d.day = s.day
