-- reliability_daily_by_gpu: observed reliability per UTC day summed over the instances of
-- each GPU model. Grain: (day, account, gpu_name). Measures as defined in reliability_daily_rollup:
-- instances, machines, observed/starting/up/down hours, availability, incidents_started,
-- incident_hours_started, reliability2_min, reliability2_last. For a window, sum the hours
-- over its days (availability = sum(up_hours) / (sum(up_hours) + sum(down_hours))).
-- materialized: view
select
    day,
    account,
    gpu_name,
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
where grouped_by = 'gpu'
