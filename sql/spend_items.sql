-- spend_items: the best-known spend, one row per UTC day per contract per item: what
-- Vast.ai billed where the account-day has a stored bill (cost_source 'billed': every
-- contract, volumes and serverless too, every item of the bill), the estimate from
-- snapshots where it has not yet (cost_source 'estimated': instances only, no bandwidth).
-- Grain: (day, account, contract_type, contract_id, item); item is billed_charges.item
-- (gpu, storage, bandwidth_down, bandwidth_up, other); contract_id = instance_id for
-- instances. spend_daily is its sum per contract-day and the FOCUS export maps its rows,
-- so the two cannot disagree.
-- Billed rows: the stored bill's items (billed_charges), download and upload apart. An
-- estimated account-day has a gpu row per instance-day with GPU-billed hours and a storage
-- row per instance-day with storage-billed hours (instance_daily, intervals split at UTC
-- midnight there); an instance-day with neither (offline throughout) has no row.
-- cost: $ of the item that day (the bill's amount, or the estimate's gpu_cost/storage_cost).
-- quantity, quantity_unit: billed: the quantity the item's description states, in
-- billed_charges.unit ('Hours', 'GB'), or 1 'Charges' when it states none (or 0);
-- estimated: the hours the GPU (gpu) or the storage (storage) was billed, 'Hours'.
-- list_unit_price: billed: the description's rate, else cost / quantity; estimated: cost /
-- hours, the day's average rate. list_cost: list_unit_price x quantity (the bill's rates
-- before any discount; the estimate's = cost).
-- instance_hours (gpu rows only, NULL on the others): hours the instance's GPU was billed:
-- the bill's billed_daily.billed_hours, else (no hours stated) the estimate's running_hours
-- that day; gpu_hours = instance_hours x num_gpus (the estimate's gpu_hours when the bill
-- states no hours). is_final: the bill was fetched more than 48 hours after the day ended
-- (NULL for estimates). item_description: the bill's description of the item (several
-- joined by '; ' for `other`), NULL for estimates; source: the bill's "instance-123".
-- Attributes (gpu_name, num_gpus, machine_id, host_id, country, is_bid, reliability2 = the
-- last reliability2 seen that day): the instance's snapshots that day (instance_daily), else
-- its latest attributes (instance_latest, the one rule for them); label: the bill's, else
-- the same; NULL for a contract no snapshot ever saw (volumes, instances shorter than a
-- snapshot interval).
-- materialized: table
-- An incremental build (the history only grew at its end) recomputes the days from the
-- first recomputed day or the first day whose bill changed, whichever is earlier: an older
-- day has the same bill, estimate and attributes that day. And, on any day, the billed
-- rows no snapshot saw that day (billed-only in cost_reconciliation) of the instances seen
-- since the first recomputed day: only their latest observed attributes can change. All
-- the rows it recomputes are on or after recompute_from, so it reads no older bill or
-- estimate (the attributes still come from every day).
-- incremental rows: day >= least(getvariable('changed_from'), getvariable('bills_changed_from')) or ((day, account, instance_id) in (select day, account, instance_id from cost_reconciliation where estimated_cost is null) and (account, instance_id) in (select account, instance_id from instance_day_summary where day >= getvariable('changed_from')))
-- incremental day: day
with bill_items as (
    -- one row per item (only `other` can gather several item types)
    select
        day,
        account,
        contract_type,
        contract_id,
        item,
        sum(amount) as cost,
        -- the stated quantity, when every row of the item states one (> 0) in one unit
        case
            when count(*) filter (where quantity > 0) = count(*) and count(distinct unit) = 1
                then sum(quantity)
        end as stated_quantity,
        case
            when count(*) filter (where quantity > 0) = count(*) and count(distinct unit) = 1
                then min(unit)
        end as stated_unit,
        -- the row's rate x quantity; its amount where it states no quantity
        sum(case when quantity > 0 then coalesce(unit_price * quantity, amount) else amount end)
            as list_cost,
        case when count(unit_price) = count(*) and min(unit_price) = max(unit_price)
            then min(unit_price) end as stated_unit_price,
        string_agg(item_description, '; ' order by item_type) as item_description
    from billed_charges
    where day >= getvariable('recompute_from')
    group by day, account, contract_type, contract_id, item
),

billed as (
    select
        c.day,
        c.account,
        c.contract_type,
        c.contract_id,
        c.item,
        b.instance_id,
        b.source,
        coalesce(b.label, s.label, l.label) as label,
        coalesce(s.gpu_name, l.gpu_name) as gpu_name,
        coalesce(s.num_gpus, l.num_gpus) as num_gpus,
        coalesce(s.machine_id, l.machine_id) as machine_id,
        coalesce(s.host_id, l.host_id) as host_id,
        coalesce(s.country, l.country) as country,
        coalesce(s.is_bid, l.is_bid) as is_bid,
        coalesce(s.reliability2_last, l.reliability2_last) as reliability2,
        'billed' as cost_source,
        b.is_final,
        c.cost,
        coalesce(c.stated_quantity, 1.0) as quantity,
        coalesce(c.stated_unit, 'Charges') as quantity_unit,
        case
            when c.stated_quantity is null then c.list_cost
            else coalesce(c.stated_unit_price, c.list_cost / c.stated_quantity)
        end as list_unit_price,
        c.list_cost,
        case when c.item = 'gpu' then coalesce(b.billed_hours, s.running_hours) end
            as instance_hours,
        case
            when c.item = 'gpu'
                then coalesce(b.billed_hours * coalesce(s.num_gpus, l.num_gpus), s.gpu_hours)
        end as gpu_hours,
        c.item_description
    from bill_items as c
    inner join billed_daily as b
        on c.day = b.day and c.account = b.account
        and c.contract_type = b.contract_type
        and c.contract_id is not distinct from b.contract_id
    left join instance_daily as s
        on b.day = s.day and b.account = s.account and b.instance_id = s.instance_id
    left join instance_latest as l on b.account = l.account and b.instance_id = l.instance_id
),

unbilled as (
    -- the estimate's instance-days of the account-days with no stored bill
    select i.*
    from instance_daily as i
    where i.day >= getvariable('recompute_from')
        and not exists (
            select 1 from billed_days as d
            where d.account = i.account and d.day = i.day
                and d.day >= getvariable('recompute_from')
        )
),

estimated as (
    select
        u.day,
        u.account,
        'instance' as contract_type,
        u.instance_id as contract_id,
        c.item,
        u.instance_id,
        cast(null as varchar) as source,
        u.label,
        u.gpu_name,
        u.num_gpus,
        u.machine_id,
        u.host_id,
        u.country,
        u.is_bid,
        u.reliability2_last as reliability2,
        'estimated' as cost_source,
        cast(null as boolean) as is_final,
        case when c.item = 'gpu' then u.gpu_cost else u.storage_cost end as cost,
        case when c.item = 'gpu' then u.running_hours else u.storage_hours end as quantity,
        'Hours' as quantity_unit,
        case when c.item = 'gpu' then u.gpu_cost / u.running_hours
            else u.storage_cost / u.storage_hours end as list_unit_price,
        case when c.item = 'gpu' then u.gpu_cost else u.storage_cost end as list_cost,
        case when c.item = 'gpu' then u.running_hours end as instance_hours,
        case when c.item = 'gpu' then u.gpu_hours end as gpu_hours,
        cast(null as varchar) as item_description
    from unbilled as u
    cross join (values ('gpu'), ('storage')) as c (item)
    where (c.item = 'gpu' and u.running_hours > 0)
        or (c.item = 'storage' and u.storage_hours > 0)
)

select * from billed
union all
select * from estimated
