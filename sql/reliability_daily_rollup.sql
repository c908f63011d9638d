-- reliability_daily_rollup: reliability_daily summed per UTC day over groups of
-- instances; `grouped_by` says which: 'host' (day, account, host_id), 'gpu' (day,
-- account, gpu_name) or 'country' (day, account, country). Grain: (grouped_by, day,
-- account, group key). The reliability_daily_by_<group> views read it, so the measures
-- are defined once: instances and hours are sums over the member instance-days;
-- availability = up / (up + down) (NULL when both are 0); incidents_started and
-- incident_hours_started count the incidents that started that day; reliability2_min is
-- the lowest host score seen, reliability2_last the lowest of the members' last scores.
-- Sum the hours over days and divide for a window's availability, never average days.
-- materialized: view
select
    case
        when grouping(host_id) = 0 then 'host'
        when grouping(gpu_name) = 0 then 'gpu'
        else 'country'
    end as grouped_by,
    day,
    account,
    host_id,
    gpu_name,
    country,
    count(distinct instance_id) as instances,
    count(distinct machine_id) as machines,
    sum(observed_hours) as observed_hours,
    sum(starting_hours) as starting_hours,
    sum(up_hours) as up_hours,
    sum(down_hours) as down_hours,
    sum(up_hours) / nullif(sum(up_hours) + sum(down_hours), 0) as availability,
    sum(incidents_started) as incidents_started,
    sum(incident_hours_started) as incident_hours_started,
    min(reliability2_min) as reliability2_min,
    min(reliability2_last) as reliability2_last
from reliability_daily
group by grouping sets (
    (day, account, host_id),
    (day, account, gpu_name),
    (day, account, country)
)
