-- spend_daily: the best-known spend per UTC day per contract: the bill where the account-day
-- has a stored bill (cost_source 'billed', every contract incl. volumes), the estimate from
-- snapshots where it has not yet (cost_source 'estimated', instances only, no bandwidth).
-- Grain: (day, account, contract_type, contract_id); contract_id = instance_id for instances.
-- Reports and the FOCUS export add up this table, so billed + estimated is counted once.
-- Attributes (gpu_name, num_gpus, host_id, is_bid) come from the instance's snapshots that
-- day, else its latest observed day (NULL for an instance no snapshot ever saw). For billed
-- rows running_hours are the bill's GPU hours and gpu_hours those x num_gpus (the
-- estimate's hours when the bill gave none).
-- materialized: table
-- An incremental build (the history only grew at its end) recomputes the days from the
-- first recomputed day or the first day whose bill changed, whichever is earlier: an older
-- day has the same bill, estimate and attributes that day. And, on any day, the billed
-- rows no snapshot saw that day (billed-only in cost_reconciliation) of the instances seen
-- since the first recomputed day: only their latest observed attributes can change.
-- All the rows it recomputes are on or after recompute_from, so it reads no older bill or
-- estimate (the attributes still come from every day).
-- incremental rows: day >= least(getvariable('changed_from'), getvariable('bills_changed_from')) or ((day, account, instance_id) in (select day, account, instance_id from cost_reconciliation where estimated_cost is null) and (account, instance_id) in (select account, instance_id from cost_daily where day >= getvariable('changed_from')))
-- incremental day: day
with attrs as (
    select
        account,
        instance_id,
        arg_max(label, day) as label,
        arg_max(gpu_name, day) as gpu_name,
        arg_max(num_gpus, day) as num_gpus,
        arg_max(host_id, day) as host_id,
        bool_or(is_bid) as is_bid
    from cost_daily
    group by account, instance_id
),

billed as (
    select
        b.day,
        b.account,
        b.contract_type,
        b.contract_id,
        b.instance_id,
        coalesce(b.label, c.label, a.label) as label,
        coalesce(c.gpu_name, a.gpu_name) as gpu_name,
        coalesce(c.num_gpus, a.num_gpus) as num_gpus,
        coalesce(c.host_id, a.host_id) as host_id,
        coalesce(c.is_bid, a.is_bid) as is_bid,
        'billed' as cost_source,
        b.is_final,
        b.gpu_cost,
        b.storage_cost,
        b.bandwidth_cost,
        b.other_cost,
        b.total_cost,
        coalesce(b.gpu_hours, c.running_hours) as running_hours,
        coalesce(b.gpu_hours * coalesce(c.num_gpus, a.num_gpus), c.gpu_hours) as gpu_hours
    from billed_daily as b
    left join cost_daily as c
        on b.day = c.day and b.account = c.account and b.instance_id = c.instance_id
    left join attrs as a on b.account = a.account and b.instance_id = a.instance_id
    where b.day >= getvariable('recompute_from')
),

estimated as (
    select
        c.day,
        c.account,
        'instance' as contract_type,
        c.instance_id as contract_id,
        c.instance_id,
        c.label,
        c.gpu_name,
        c.num_gpus,
        c.host_id,
        c.is_bid,
        'estimated' as cost_source,
        cast(null as boolean) as is_final,
        c.gpu_cost,
        c.storage_cost,
        0.0 as bandwidth_cost,
        0.0 as other_cost,
        c.total_cost,
        c.running_hours,
        c.gpu_hours
    from cost_daily as c
    anti join billed_days as d on c.account = d.account and c.day = d.day
    where c.day >= getvariable('recompute_from')
)

select * from billed
union all by name
select * from estimated
