-- alerts_firing_by_rule: how many alerts fire now, per account and rule. Grain: (account,
-- rule), only pairs with at least one alert firing (a rule firing nowhere has no row).
-- `account` is '' for an alert about no account (e.g. run_failed); `firing` counts the
-- alerts_firing rows (as of the newest evaluation).
-- materialized: view (live over the alert log)
select
    coalesce(account, '') as account,
    rule,
    count(*) as firing
from alerts_firing
group by coalesce(account, ''), rule
