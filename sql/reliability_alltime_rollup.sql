-- reliability_alltime_rollup: reliability_alltime_by_instance summed over groups of instances, one row per
-- group; `grouped_by` says which grouping: 'machine' (account, machine_id, host_id),
-- 'host' (account, host_id), 'gpu' (account, gpu_name) or 'country' (account, country).
-- Grain: (grouped_by, account, group key). The reliability_by_<group> views read it, so
-- the measures are defined once: hours and incidents are sums over member instances;
-- availability = up / (up + down); coverage = observed / window hours; mttr_hours =
-- incident hours / incidents; mtbf_hours = up hours / incidents (NULL without incidents);
-- reliability2 (the host score): first of the earliest member, last of the latest (the
-- lowest score when members tie, so the answer does not depend on row order), min.
-- materialized: table
select
    case
        when grouping(machine_id) = 0 then 'machine'
        when grouping(host_id) = 0 then 'host'
        when grouping(gpu_name) = 0 then 'gpu'
        else 'country'
    end as grouped_by,
    account, machine_id, host_id, gpu_name, country,
    count(*) as instances,
    sum(window_hours) as window_hours,
    sum(observed_hours) as observed_hours,
    sum(observed_hours) / nullif(sum(window_hours), 0) as coverage,
    sum(starting_hours) as starting_hours,
    sum(up_hours) as up_hours,
    sum(down_hours) as down_hours,
    sum(up_hours) / nullif(sum(up_hours) + sum(down_hours), 0) as availability,
    sum(incidents) as incidents,
    sum(incident_hours) as incident_hours,
    sum(incident_hours) / nullif(sum(incidents), 0) as mttr_hours,
    sum(up_hours) / nullif(sum(incidents), 0) as mtbf_hours,
    min_by(reliability2_first, (first_seen, reliability2_first)) as reliability2_first,
    max_by(reliability2_last, (last_seen, -reliability2_last)) as reliability2_last,
    min(reliability2_min) as reliability2_min
from reliability_alltime_by_instance
group by grouping sets (
    (account, machine_id, host_id),
    (account, host_id),
    (account, gpu_name),
    (account, country)
)
