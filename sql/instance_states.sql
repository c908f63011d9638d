-- instance_states: instance_snapshots with the reliability state of each snapshot, the one
-- definition of "starting", "up" and "down" that instance_intervals (and through it the
-- reliability models and incidents) and the instance_down alert read.
-- Grain: (account, instance_id, snapshot_at). A state counts only while the instance is
-- meant to run (intended status running):
-- - `is_starting`: before its starting phase ends (instance_latest.first_settled_at, its
--   first snapshot with `is_settled_status`: any status but NULL, created or loading);
-- - `is_up`: actual status running;
-- - `is_down`: `is_not_running_as_meant` (any other actual status, NULL included) once
--   the starting phase has ended (so a `loading` after a restart is down).
-- A new snapshot never changes the state of an older one: the starting phase ends at the
-- first settled snapshot, which an older snapshot is either after or before for good.
-- materialized: view
select
    s.*,
    coalesce(s.intended_status = 'running', false)
    and (l.first_settled_at is null or s.snapshot_at < l.first_settled_at) as is_starting,
    coalesce(s.intended_status = 'running' and s.actual_status = 'running', false) as is_up,
    s.is_not_running_as_meant and coalesce(s.snapshot_at >= l.first_settled_at, false)
        as is_down
from instance_snapshots as s
left join instance_latest as l on s.account = l.account and s.instance_id = l.instance_id
