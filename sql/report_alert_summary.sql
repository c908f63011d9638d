-- report_alert_summary: whether the alert rules watched a window, one row, so that a
-- report says "not evaluated" rather than "nothing fired" when nobody looked.
-- Call: report_alert_summary(day_from, day_to, account_name := NULL).
-- evaluations_in_window: evaluations (alert_evaluations) covering the account whose data
-- (observed_at) falls in the window; evaluations_ever: all of them; last_evaluated_at /
-- last_data_as_of: the newest evaluation covering the account, any time, and the data it
-- judged; transitions_in_window: alerts that fired or resolved in the window (`alerts`);
-- firing_now: alerts_firing of the account (and those about no account).
-- materialized: macro
-- macro: report_alert_summary(day_from, day_to, account_name := NULL)
with evaluations as (
    select *
    from alert_evaluations
    where account_name is null or covers_all_accounts or list_contains(accounts, account_name)
),

window_bounds as (
    select
        cast(cast(day_from as date) as timestamptz) as t0,
        cast(cast(day_to as date) + interval 1 day as timestamptz) as t1
)

select
    (select count(*) from evaluations, window_bounds as w
     where observed_at >= w.t0 and observed_at < w.t1) as evaluations_in_window,
    (select count(*) from evaluations) as evaluations_ever,
    (select max(evaluated_at) from evaluations) as last_evaluated_at,
    (select max(observed_at) from evaluations) as last_data_as_of,
    (select count(*) from alerts, window_bounds as w
     where observed_at >= w.t0 and observed_at < w.t1
         and (account_name is null or account is null or account = account_name))
        as transitions_in_window,
    (select count(*) from alerts_firing
     where account_name is null or account is null or account = account_name) as firing_now
