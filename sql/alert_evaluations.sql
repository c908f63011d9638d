-- alert_evaluations: every evaluation of the alert rules. Grain: evaluation_id.
-- Read from alert_log, so live: an evaluation made after the build is here already.
-- An evaluation is one pass of some rules over some accounts at one point of the pipeline
-- (`point`: after_collection, after_landing, after_build or run_finished); the
-- evaluations of one pass share `run_id`. `evaluated_at` is when it ran (wall clock);
-- `observed_at` the data it judged, as of (the newest snapshot for the snapshot and cost
-- rules, the run's end for run_failed). `rules`: the rules it covered;
-- `rules_switched_off`: those of them switched off in the config (covered to resolve what
-- they had fired, not evaluated). `covers_all_accounts`, else `accounts`: the accounts it
-- covered (an evaluation of every account also covers alerts about no account); `keys`:
-- the only alert keys it covered, NULL for all. `firing_in_scope`: alerts of its rules
-- and accounts firing right after it; `firing_total`: every alert firing right after it,
-- any rule; `fired` / `resolved`: the transitions it made. `alert_state_id` as in alerts.
-- No row means the rules were not evaluated: not that nothing was wrong.
-- materialized: view (live over the alert log)
select
    evaluation_id,
    run_id,
    point,
    evaluated_at,
    observed_at,
    rules,
    coalesce(rules_switched_off, []) as rules_switched_off,
    accounts is null as covers_all_accounts,
    accounts,
    keys,
    firing_in_scope,
    firing_total,
    fired,
    resolved,
    state_id as alert_state_id
from alert_log
where record = 'evaluation'
