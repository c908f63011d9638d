-- account_now: TEMPORARY stand-in (replaced by the accounts branch).
-- Grain: account.
-- materialized: table
select
    account,
    max(snapshot_at) as snapshot_at,
    sum(burn_rate_per_hour) as burn_rate_per_hour,
    sum(burn_rate_per_hour) * 24 as burn_per_day,
    sum(burn_rate_per_hour) * 730 as burn_per_month,
    count(*) filter (where actual_status = 'running') as instances_running,
    max(credit_balance) as credit_balance,
    max(credit_balance) / nullif(sum(burn_rate_per_hour), 0) as runway_hours
from fleet_now
group by account
