-- billed_days: the bill log, one row per fetched (account, day): the commit record of that
-- day's bill. Grain: (account, day). pipeline.billing writes it after the new fetch's rows
-- (which land beside the old fetch's) and before the old rows are dropped, so only charge
-- rows whose fetch_id equals this row's fetch_id belong to the stored bill; rows of another
-- fetch_id are a killed writer's leftovers and must be skipped.
-- is_final: the day ended more than 48 hours before it was fetched (Vast settles late; a
-- bill fetched sooner may still change and is fetched again).
-- materialized: view (live over the Parquet written by pipeline.billing)
select
    account,
    day,
    * exclude (account, day),
    fetched_at > cast(day + 1 as timestamptz) + interval 48 hour as is_final
from read_parquet(
    '{{ billed_days_glob }}',
    hive_partitioning = true,
    hive_types = {'account': varchar, 'day': date},
    union_by_name = {{ billed_days_union_by_name }}
)
qualify row_number() over (partition by account, day order by fetched_at desc) = 1
