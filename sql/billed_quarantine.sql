-- billed_quarantine: charge results (or values) of the stored bills that could not be
-- typed, with the original value and the reason. Grain: one row per rejected value or
-- result of a committed fetch (account, day, fetch_id).
-- materialized: view (live over the Parquet written by pipeline.billing)
select
    q.account,
    q.day,
    q.* exclude (account, day)
from read_parquet(
    '{{ billed_quarantine_glob }}',
    hive_partitioning = true,
    hive_types = {'account': varchar, 'day': date},
    union_by_name = {{ billed_quarantine_union_by_name }}
) as q
semi join billed_days as d
    on q.account = d.account and q.day = d.day and q.fetch_id = d.fetch_id
