-- alerts: every alert transition (a problem starting to fire, or resolving) with its
-- delivery to the webhook receivers. Grain: transition_id (ordered by `seq` within one
-- `alert_state_id`).
-- Read from alert_log, so live: a transition made after the build is here already.
-- `key` is stable for one problem (e.g. instance_down/default/2004); `account` and
-- `instance_id` are NULL when the alert is not about one. `receivers` are the receiver
-- NAMES the transition was queued for (URLs are secrets and never stored);
-- `delivery_attempts` counts POSTs over every run; `delivered_to` the receivers that
-- accepted it; `delivery_status`: delivered (every receiver accepted), pending (some
-- receiver has not accepted yet: it stays queued and is retried by the next run), no
-- receiver (none configured when it happened). `last_error` is the latest refusal.
-- `alert_state_id`: the alert state it was recorded in (a state file moved aside and
-- started afresh gets a new id, and its `seq` starts again at 1).
-- materialized: view (live over the alert log)
with deliveries as (
    select
        transition_id,
        sum(attempts) as delivery_attempts,
        list_sort(list(distinct receiver) filter (where accepted)) as delivered_to,
        max(attempted_at) filter (where accepted) as delivered_at,
        arg_max(error, attempted_at) filter (where not accepted) as last_error
    from alert_log
    where record = 'delivery'
    group by transition_id
)

select
    t.transition_id,
    t.seq,
    t.rule,
    t.state,
    t.key,
    t.account,
    t.instance_id,
    t.summary,
    t.started_at,
    t.observed_at,
    coalesce(t.receivers, []) as receivers,
    coalesce(d.delivery_attempts, 0) as delivery_attempts,
    coalesce(d.delivered_to, []) as delivered_to,
    d.delivered_at,
    d.last_error,
    case
        when len(coalesce(t.receivers, [])) = 0 then 'no receiver'
        when len(coalesce(d.delivered_to, [])) >= len(t.receivers) then 'delivered'
        else 'pending'
    end as delivery_status,
    t.state_id as alert_state_id
from alert_log as t
left join deliveries as d on t.transition_id = d.transition_id
where t.record = 'transition'
