-- billed_daily: what Vast.ai billed per UTC day per contract. Grain: (day, account,
-- contract_type, contract_id); for instances (contract_type 'instance') that is (day,
-- account, instance_id). Volume and serverless contracts are rows too (instance_id NULL),
-- so sum(total_cost) is the whole bill; filter contract_type = 'instance' to compare with
-- the estimates.
-- Costs by billed_charges.item: gpu_cost, storage_cost (disk), bandwidth_down_cost (bwd),
-- bandwidth_up_cost (bwu), bandwidth_cost (both), other_cost (the residual `other` and any
-- new item type); total_cost is their sum, equal to the contract's amount.
-- billed_hours: the hours the bill's gpu item states (parsed from "24.000 hours at
-- $0.389/hour"), the instance's hours, not multiplied by the GPU count; NULL when the
-- description did not say. bandwidth_down_gb, bandwidth_up_gb: the GB the items state.
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
    coalesce(sum(c.amount) filter (where c.item = 'gpu'), 0.0) as gpu_cost,
    coalesce(sum(c.amount) filter (where c.item = 'storage'), 0.0) as storage_cost,
    coalesce(sum(c.amount) filter (where c.item = 'bandwidth_down'), 0.0)
        as bandwidth_down_cost,
    coalesce(sum(c.amount) filter (where c.item = 'bandwidth_up'), 0.0) as bandwidth_up_cost,
    coalesce(sum(c.amount) filter (where c.item in ('bandwidth_down', 'bandwidth_up')), 0.0)
        as bandwidth_cost,
    coalesce(sum(c.amount) filter (where c.item = 'other'), 0.0) as other_cost,
    sum(c.amount) as total_cost,
    sum(c.quantity) filter (where c.item = 'gpu' and c.unit = 'Hours') as billed_hours,
    sum(c.quantity) filter (where c.item = 'bandwidth_down' and c.unit = 'GB')
        as bandwidth_down_gb,
    sum(c.quantity) filter (where c.item = 'bandwidth_up' and c.unit = 'GB')
        as bandwidth_up_gb,
    max(d.fetched_at) as fetched_at,
    bool_and(d.is_final) as is_final,
    max(d.fetch_id) as fetch_id
from billed_charges as c
join billed_days as d on c.account = d.account and c.day = d.day
group by c.day, c.account, c.contract_type, c.contract_id
