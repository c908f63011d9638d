-- report_incidents: the incidents that overlap a window, one row per incident (see
-- `incidents`), with hours_in_window: its span from started_at to ended_at clipped to the
-- window. hours is the incident's whole observed down time, in and out of the window.
-- Call: report_incidents(day_from, day_to, account_name := NULL).
-- materialized: macro
-- macro: report_incidents(day_from, day_to, account_name := NULL)
select
    account,
    instance_id,
    label,
    gpu_name,
    machine_id,
    host_id,
    started_at,
    ended_at,
    hours,
    statuses,
    is_ongoing,
    epoch(
        least(ended_at, cast(cast(day_to as date) + interval 1 day as timestamptz))
        - greatest(started_at, cast(cast(day_from as date) as timestamptz))
    ) / 3600.0 as hours_in_window
from incidents
where
    started_at < cast(cast(day_to as date) + interval 1 day as timestamptz)
    and ended_at > cast(cast(day_from as date) as timestamptz)
    and (account_name is null or account = account_name)
