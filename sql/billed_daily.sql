-- billed_daily: what Vast.ai billed per UTC day per contract. Grain: (day, account,
-- contract_type, contract_id); for instances (contract_type 'instance') that is (day,
-- account, instance_id). Volume and serverless contracts are rows too (instance_id NULL),
-- so sum(total_cost) is the whole bill; filter contract_type = 'instance' to compare with
-- the estimates.
-- Costs by item: gpu_cost (gpu), storage_cost (disk), bandwidth_down_cost (bwd),
-- bandwidth_up_cost (bwu), other_cost (the residual `other` and any new item type);
-- total_cost is their sum, equal to the contract's amount. gpu_hours and the GB columns are
-- parsed from the items' descriptions (unit 'hours'/'hour', 'GB' in any case; NULL when the
-- description did not say); gpu_hours is the hours the GPU was billed, not multiplied by
-- the GPU count.
-- is_final: the day ended more than 48 hours before it was fetched.
-- materialized: table
select
    c.day,
    c.account,
    c.contract_type,
    c.contract_id,
    max(c.instance_id) as instance_id,
    max(c.label) as label,
    max(c.source) as source,
    coalesce(sum(c.amount) filter (where c.item_type = 'gpu'), 0.0) as gpu_cost,
    coalesce(sum(c.amount) filter (where c.item_type = 'disk'), 0.0) as storage_cost,
    coalesce(sum(c.amount) filter (where c.item_type = 'bwd'), 0.0) as bandwidth_down_cost,
    coalesce(sum(c.amount) filter (where c.item_type = 'bwu'), 0.0) as bandwidth_up_cost,
    coalesce(sum(c.amount) filter (where c.item_type in ('bwd', 'bwu')), 0.0)
        as bandwidth_cost,
    coalesce(
        sum(c.amount) filter (where c.item_type not in ('gpu', 'disk', 'bwd', 'bwu')), 0.0
    ) as other_cost,
    sum(c.amount) as total_cost,
    sum(c.quantity) filter (
        where c.item_type = 'gpu' and lower(c.quantity_unit) in ('hours', 'hour')
    ) as gpu_hours,
    sum(c.quantity) filter (where c.item_type = 'bwd' and upper(c.quantity_unit) = 'GB')
        as bandwidth_down_gb,
    sum(c.quantity) filter (where c.item_type = 'bwu' and upper(c.quantity_unit) = 'GB')
        as bandwidth_up_gb,
    max(d.fetched_at) as fetched_at,
    bool_and(d.is_final) as is_final,
    max(d.fetch_id) as fetch_id
from billed_charges as c
join billed_days as d on c.account = d.account and c.day = d.day
group by c.day, c.account, c.contract_type, c.contract_id
