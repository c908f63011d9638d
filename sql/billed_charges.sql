-- billed_charges: the stored bill, one row per contract per UTC day per item type (gpu,
-- disk, bwd, bwu, other = the part of a contract's amount its items do not explain).
-- Grain: (account, day, contract_type, contract_id, item_type). Committed rows only: rows
-- whose fetch_id is not the one billed_days logged for their (account, day) are left-overs
-- of a killed or superseded fetch and are not part of the bill.
-- materialized: view (live over the Parquet written by pipeline.charges)
select
    c.account,
    c.day,
    c.* exclude (account, day)
from read_parquet(
    '{{ billed_charges_glob }}',
    hive_partitioning = true,
    hive_types = {'account': varchar, 'day': date},
    union_by_name = {{ billed_charges_union_by_name }}
) as c
semi join billed_days as d
    on c.account = d.account and c.day = d.day and c.fetch_id = d.fetch_id
