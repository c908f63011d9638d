-- estimated_cost_daily: the ESTIMATE of cost from snapshots per UTC day per instance
-- (spend_daily is the best-known spend: the bill where there is one, this elsewhere).
-- Grain: (day, account, instance_id). Intervals are split at UTC midnight
-- proportionally; instance_hours are hours with the GPU billed (running or frozen),
-- gpu_hours = instance_hours x num_gpus. Bandwidth is not estimated (snapshots carry no
-- byte counters).
-- materialized: view
select
    day,
    account,
    instance_id,
    label,
    gpu_name,
    num_gpus,
    machine_id,
    host_id,
    country,
    is_bid,
    observed_hours,
    running_hours as instance_hours,
    gpu_hours,
    gpu_cost,
    storage_cost,
    total_cost,
    total_cost / nullif(gpu_hours, 0) as cost_per_gpu_hour
from instance_daily
