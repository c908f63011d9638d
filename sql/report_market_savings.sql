-- report_market_savings: the savings advice as the report shows it, one row per
-- savings_opportunities row of the account (every account when NULL).
-- Call: report_market_savings(day_from, day_to, account_name := NULL); the advice is as of
-- the newest snapshots, so the window does not narrow it (the parameters keep the marts'
-- one calling form).
-- savings_rank 1 = the largest monthly_savings (ties by account, instance_id);
-- opportunities: how many rows; total_monthly_savings: the sum of every row's
-- monthly_savings, each instance against its own best offer (one offer may be the best for
-- several instances, and it is counted for each: `instances_on_offer` says for how many).
-- materialized: macro
-- macro: report_market_savings(day_from, day_to, account_name := NULL)
select
    *,
    row_number() over (order by monthly_savings desc, account, instance_id) as savings_rank,
    count(*) over () as opportunities,
    sum(monthly_savings) over () as total_monthly_savings,
    count(*) over (partition by offer_id) as instances_on_offer
from savings_opportunities
where (account_name is null or account = account_name)
    and day_from <= day_to
