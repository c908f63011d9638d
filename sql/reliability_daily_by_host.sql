-- reliability_daily_by_host: observed reliability per UTC day summed over the instances of
-- each host. Grain: (day, account, host_id). Measures as defined in reliability_daily_rollup:
-- instances, machines, observed/starting/up/down hours, availability, incidents_started,
-- incident_hours_started, reliability2_min, reliability2_last. For a window, sum the hours
-- over its days (availability = sum(up_hours) / (sum(up_hours) + sum(down_hours))).
-- materialized: view
select
    day,
    account,
    host_id,
    instances,
    machines,
    observed_hours,
    starting_hours,
    up_hours,
    down_hours,
    availability,
    incidents_started,
    incident_hours_started,
    reliability2_min,
    reliability2_last
from reliability_daily_rollup
where grouped_by = 'host'
