-- idle_spend: money paid for nothing, per UTC day per instance (only instance-days with
-- some). Grain: (day, account, instance_id). Stopped storage = storage billed while the
-- GPU is not (stopped, exited, ...); idle GPU = intervals with `gpu_idle` (the idle rule,
-- defined in instance_snapshots; the utilisation at the interval's start).
-- materialized: view
select
    day,
    account,
    instance_id,
    label,
    gpu_name,
    stopped_storage_hours,
    stopped_storage_cost,
    idle_instance_hours,
    idle_gpu_cost,
    stopped_storage_cost + idle_gpu_cost as idle_cost
from instance_daily
where stopped_storage_hours > 0 or idle_instance_hours > 0
