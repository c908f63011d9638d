-- report_time_to_running: the instances first seen in a window, one row each, with how
-- long they took to run: time_to_running_hours from the first snapshot to the first one
-- seen running (reliability_alltime_by_instance; NULL: never seen running, reached = false).
-- Call: report_time_to_running(day_from, day_to, account_name := NULL).
-- materialized: macro
-- macro: report_time_to_running(day_from, day_to, account_name := NULL)
select
    account,
    instance_id,
    label,
    gpu_name,
    host_id,
    first_seen,
    first_running_at,
    time_to_running_hours,
    first_running_at is not null as reached_running
from reliability_alltime_by_instance
where
    first_seen >= cast(cast(day_from as date) as timestamptz)
    and first_seen < cast(cast(day_to as date) + interval 1 day as timestamptz)
    and (account_name is null or account = account_name)
