-- billed_charges: the stored bill, one row per contract per UTC day per item type (gpu,
-- disk, bwd, bwu, other = the part of a contract's amount its items do not explain).
-- Grain: (account, day, contract_type, contract_id, item_type). Committed rows only: rows
-- whose fetch_id is not the one billed_days logged for their (account, day) are left-overs
-- of a killed or superseded fetch and are not part of the bill.
-- Besides the stored columns, written only here for every model that reads the bill:
-- item: what the item_type is billed for, gpu (gpu), storage (disk), bandwidth_down (bwd),
-- bandwidth_up (bwu), other (the residual `other` and any new type); unit: quantity_unit
-- as the models read it, 'Hours' (hours, hour), 'GB' (any case), else as parsed; NULL when
-- the description stated no quantity.
-- materialized: view (live over the Parquet written by pipeline.billing)
select
    c.account,
    c.day,
    c.* exclude (account, day),
    case c.item_type
        when 'gpu' then 'gpu'
        when 'disk' then 'storage'
        when 'bwd' then 'bandwidth_down'
        when 'bwu' then 'bandwidth_up'
        else 'other'
    end as item,
    case
        when c.quantity is null then null
        when lower(c.quantity_unit) in ('hours', 'hour') then 'Hours'
        when upper(c.quantity_unit) = 'GB' then 'GB'
        else c.quantity_unit
    end as unit
from read_parquet(
    '{{ billed_charges_glob }}',
    hive_partitioning = true,
    hive_types = {'account': varchar, 'day': date},
    union_by_name = {{ billed_charges_union_by_name }}
) as c
-- an inner join, not a semi join (billed_days has one row per account-day): a reader's
-- filter on day then reaches billed_days' files too (3x faster for a few recent days)
inner join billed_days as d
    on c.account = d.account and c.day = d.day and c.fetch_id = d.fetch_id
