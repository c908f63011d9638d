-- idle_spend: money paid for nothing, per UTC day per instance (only instance-days with
-- some). Grain: (day, account, instance_id). Stopped storage = storage billed while the
-- GPU is not (stopped, exited, ...); idle GPU = GPU billed while gpu_util_fraction < 0.05
-- (util at the interval's start; unknown util is not counted as idle).
-- materialized: view
select
    day,
    account,
    instance_id,
    label,
    gpu_name,
    stopped_storage_hours,
    stopped_storage_cost,
    idle_gpu_hours,
    idle_gpu_cost,
    stopped_storage_cost + idle_gpu_cost as idle_cost
from instance_daily
where stopped_storage_hours > 0 or idle_gpu_hours > 0
