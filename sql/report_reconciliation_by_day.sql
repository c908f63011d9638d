-- report_reconciliation_by_day: the bill against the estimate per UTC day of a window,
-- one row per day with a stored bill (cost_reconciliation, instance contracts only).
-- Call: report_reconciliation_by_day(day_from, day_to, account_name := NULL).
-- difference = billed_cost - estimated_cost; is_final: every bill of the day is final.
-- materialized: macro
-- macro: report_reconciliation_by_day(day_from, day_to, account_name := NULL)
select
    day,
    coalesce(sum(billed_cost), 0) as billed_cost,
    coalesce(sum(estimated_cost), 0) as estimated_cost,
    coalesce(sum(bandwidth_cost), 0) as bandwidth_cost,
    coalesce(sum(billed_cost), 0) - coalesce(sum(estimated_cost), 0) as difference,
    bool_and(is_final) as is_final
from cost_reconciliation
where
    day_billed
    and day between day_from and day_to
    and (account_name is null or account = account_name)
group by day
