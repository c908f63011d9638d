-- snapshots: the snapshot log, one row per successful snapshot of an account (even one
-- that listed zero instances). Grain: (account, snapshot_at). It defines the account's
-- snapshot timeline that instance intervals run along.
-- materialized: view (live over the Parquet written by pipeline.landing.history)
select
    account,
    snapshot_date,
    * exclude (account, snapshot_date)
from read_parquet(
    '{{ snapshots_glob }}',
    hive_partitioning = true,
    hive_types = {'account': varchar, 'snapshot_date': date},
    union_by_name = {{ snapshots_union_by_name }}
)
