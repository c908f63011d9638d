-- alerts_firing: every alert firing now, as of the newest evaluation. Grain: key.
-- An alert fires from its firing transition until a resolved one; only the transitions
-- of the current alert state count (the `alert_state_id` of the newest evaluation), so
-- alerts of a state file moved aside are not shown forever. `summary` is the text sent
-- when it fired (`vast-pipeline alerts` shows the newest wording); `fired_at` the
-- observed_at of that transition and `started_at` when the problem began.
-- `last_evaluated_at` / `data_as_of`: the newest evaluation covering it (its rule, its
-- account) and the data that one judged: it still held then.
-- materialized: view (live over the alert log)
with current_state as (
    select alert_state_id
    from alert_evaluations
    where evaluated_at = (select max(evaluated_at) from alert_evaluations)
),

transitions as (
    select
        a.*,
        row_number() over (partition by a.key order by a.seq desc) as newest_first
    from alerts as a
    where a.alert_state_id = coalesce((select max(alert_state_id) from current_state), '')
),

firing as (
    select * from transitions where newest_first = 1 and state = 'firing'
),

covering as (
    select
        f.key,
        max(e.evaluated_at) as last_evaluated_at,
        arg_max(e.observed_at, e.evaluated_at) as data_as_of
    from firing as f
    inner join alert_evaluations as e
        on list_contains(e.rules, f.rule)
        and (e.covers_all_accounts or list_contains(e.accounts, f.account))
        and (e.keys is null or list_contains(e.keys, f.key))
        and e.alert_state_id = f.alert_state_id
    group by f.key
)

select
    f.key,
    f.rule,
    f.account,
    f.instance_id,
    f.summary,
    f.started_at,
    f.observed_at as fired_at,
    f.transition_id,
    f.delivery_status,
    c.last_evaluated_at,
    c.data_as_of
from firing as f
left join covering as c on f.key = c.key
