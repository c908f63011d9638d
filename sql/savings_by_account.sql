-- savings_by_account: the monthly savings the market offers each account now. Grain:
-- account (every account of account_now).
-- `monthly_savings`: the sum of the account's savings_opportunities.monthly_savings (each
-- instance against its own best offer, as the cost report's total counts them; one offer
-- may be the best for several instances), 0 when it has none; NULL while there is no
-- market history spanning the lookback (market_history.has_lookback false or no market
-- yet), when savings_opportunities cannot say. `opportunities`: how many of its instances
-- have one (NULL likewise).
-- materialized: view
with market as (
    select coalesce(max(case when has_lookback then 1 end), 0) = 1 as has_lookback
    from market_history
),

summed as (
    select account, sum(monthly_savings) as monthly_savings, count(*) as opportunities
    from savings_opportunities
    group by account
)

select
    a.account,
    case when m.has_lookback then coalesce(s.monthly_savings, 0.0) end as monthly_savings,
    case when m.has_lookback then coalesce(s.opportunities, 0) end as opportunities
from account_now as a
cross join market as m
left join summed as s on a.account = s.account
