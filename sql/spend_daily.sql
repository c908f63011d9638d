-- spend_daily: the best-known spend per UTC day per contract: spend_items summed over its
-- items, so the reports (which read this) and the FOCUS export (which reads spend_items)
-- cannot disagree. The bill where the account-day has a stored bill (cost_source 'billed',
-- every contract incl. volumes), the estimate from snapshots where it has not yet
-- (cost_source 'estimated', instances only, no bandwidth).
-- Grain: (day, account, contract_type, contract_id); contract_id = instance_id for instances.
-- Costs by item: gpu_cost, storage_cost, bandwidth_down_cost, bandwidth_up_cost,
-- bandwidth_cost (both), other_cost; total_cost is their sum. instance_hours: hours the
-- instance's GPU was billed (the bill's stated hours, else the estimate's); gpu_hours:
-- those x num_gpus; both 0 for an instance-day with no gpu item (its GPU was not billed),
-- NULL where a gpu item's hours are unknown and for other contracts (a volume has no GPU). The attributes, cost_source
-- and is_final are those of the contract-day (the same on each of its items, spend_items).
-- materialized: view
select
    day,
    account,
    contract_type,
    contract_id,
    instance_id,
    source,
    label,
    gpu_name,
    num_gpus,
    machine_id,
    host_id,
    country,
    is_bid,
    reliability2,
    cost_source,
    is_final,
    coalesce(sum(cost) filter (where item = 'gpu'), 0.0) as gpu_cost,
    coalesce(sum(cost) filter (where item = 'storage'), 0.0) as storage_cost,
    coalesce(sum(cost) filter (where item = 'bandwidth_down'), 0.0) as bandwidth_down_cost,
    coalesce(sum(cost) filter (where item = 'bandwidth_up'), 0.0) as bandwidth_up_cost,
    coalesce(sum(cost) filter (where item in ('bandwidth_down', 'bandwidth_up')), 0.0)
        as bandwidth_cost,
    coalesce(sum(cost) filter (where item = 'other'), 0.0) as other_cost,
    sum(cost) as total_cost,
    -- no gpu item: the instance's GPU was not billed that day (0); a gpu item whose hours
    -- nobody stated stays NULL (unknown)
    case
        when contract_type <> 'instance' then null
        when count(case when item = 'gpu' then 1 end) = 0 then 0.0
        else sum(instance_hours)
    end as instance_hours,
    case
        when contract_type <> 'instance' then null
        when count(case when item = 'gpu' then 1 end) = 0 then 0.0
        else sum(gpu_hours)
    end as gpu_hours
from spend_items
group by
    day, account, contract_type, contract_id, instance_id, source, label, gpu_name, num_gpus,
    machine_id, host_id, country, is_bid, reliability2, cost_source, is_final
