-- collection_now: how fresh each account's collected data is, read live. Grain: account
-- (every account with a snapshot or a fetched bill).
-- `last_snapshot_at`: the account's newest successful snapshot in the snapshot log (the
-- last successful collection of it; `time() - ...` is its staleness);
-- `last_bill_fetched_at`: when a bill of the account was last fetched (the newest
-- fetched_at of the bill log) and `last_billed_day` the newest UTC day it holds a bill of.
-- Unlike account_now (as of the last build) both are live over the Parquet logs, so a
-- collection or a fetch shows here before the next build.
-- materialized: view (live over the snapshot and bill logs)
with collected as (
    select account, max(snapshot_at) as last_snapshot_at
    from snapshots
    group by account
),

billed as (
    select
        account,
        max(fetched_at) as last_bill_fetched_at,
        max(day) as last_billed_day
    from billed_days
    group by account
)

select
    coalesce(c.account, b.account) as account,
    c.last_snapshot_at,
    b.last_bill_fetched_at,
    b.last_billed_day
from collected as c
full outer join billed as b on c.account = b.account
