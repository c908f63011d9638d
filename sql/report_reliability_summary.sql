-- report_reliability_summary: the reliability report's headline figures for one window,
-- one row. Call: report_reliability_summary(day_from, day_to, account_name := NULL).
-- Hours: report_reliability_by_instance summed; availability = up / (up + down) hours
-- while meant to run (starting excluded); coverage = covered / span hours of the
-- instances in the window; instances, hosts: those observed in it.
-- incidents: those overlapping the window (report_incidents), ongoing among them,
-- mttr_hours their mean whole length, incident_hours_in_window their time in the window;
-- mtbf_hours = up_hours / incidents (NULL without incidents).
-- starts: instances first seen in the window (report_time_to_running), reached_running
-- those seen running since; time_to_running_median/_mean/_max over the latter, in hours.
-- materialized: macro
-- macro: report_reliability_summary(day_from, day_to, account_name := NULL)
with inst as (
    select
        coalesce(sum(observed_hours), 0) as observed_hours,
        coalesce(sum(up_hours), 0) as up_hours,
        coalesce(sum(down_hours), 0) as down_hours,
        coalesce(sum(starting_hours), 0) as starting_hours,
        sum(up_hours) / nullif(sum(up_hours) + sum(down_hours), 0) as availability,
        sum(covered_hours) / nullif(sum(span_hours), 0) as coverage,
        count(*) as instances,
        count(distinct host_id) as hosts
    from report_reliability_by_instance(day_from, day_to, account_name := account_name)
),

inc as (
    select
        count(*) as incidents,
        count(case when is_ongoing then 1 end) as incidents_ongoing,
        avg(hours) as mttr_hours,
        coalesce(sum(hours_in_window), 0) as incident_hours_in_window
    from report_incidents(day_from, day_to, account_name := account_name)
),

starts as (
    select
        count(*) as starts,
        count(case when reached_running then 1 end) as starts_reached_running,
        percentile_cont(0.5) within group (order by time_to_running_hours)
            as time_to_running_median,
        avg(time_to_running_hours) as time_to_running_mean,
        max(time_to_running_hours) as time_to_running_max
    from report_time_to_running(day_from, day_to, account_name := account_name)
)

select
    cast(day_from as date) as window_from,
    cast(day_to as date) as window_to,
    i.*,
    c.*,
    i.up_hours / nullif(c.incidents, 0) as mtbf_hours,
    s.*
from inst as i, inc as c, starts as s
