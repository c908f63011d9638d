"""The reliability report: was the fleet up when it should have been, and where not.

Availability always comes with coverage beside it (gaps in collection would otherwise
inflate it, the Prometheus `avg_over_time` trap), and the host's `reliability2` is shown
next to what we observed, because it is a prior about the host, not a measurement of the
user's instance. All SQL for these figures is in `PREPARE` and `QUERIES`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from pipeline.reports.model import Column, Metric, Report, Section, Table, charts, fmt
from pipeline.reports.source import ACCOUNT_FILTER, fetch, require_data, window_params
from pipeline.reports.window import Window

_IN_WINDOW = f"day BETWEEN $d0 AND $d1 AND {ACCOUNT_FILTER}"
TOP = 15

# Per instance, window-scoped: daily reliability summed, coverage from the intervals
# clipped to the window, descriptive columns from reliability_by_instance.
_INSTANCES = f"""
    WITH d AS (
        SELECT account, instance_id, sum(observed_hours) AS observed_hours,
               sum(up_hours) AS up_hours, sum(down_hours) AS down_hours,
               sum(starting_hours) AS starting_hours,
               sum(incidents_started) AS incidents_started,
               arg_max(reliability2_last, day) AS reliability2_last,
               min(reliability2_min) AS reliability2_min
        FROM reliability_daily WHERE {_IN_WINDOW} GROUP BY account, instance_id),
    iv AS (
        SELECT account, instance_id, greatest(interval_start, $t0) AS s,
               least(interval_end, $t1) AS e
        FROM instance_intervals
        WHERE interval_end > $t0 AND interval_start < $t1 AND {ACCOUNT_FILTER}),
    cov AS (
        SELECT account, instance_id, sum(epoch(e - s)) / 3600.0 AS covered_hours,
               epoch(max(e) - min(s)) / 3600.0 AS span_hours
        FROM iv GROUP BY account, instance_id)
    SELECT d.account, d.instance_id, b.label, b.gpu_name, b.machine_id, b.host_id, b.country,
           d.observed_hours, d.up_hours, d.down_hours, d.starting_hours, d.incidents_started,
           d.up_hours / nullif(d.up_hours + d.down_hours, 0) AS availability,
           cov.covered_hours, cov.span_hours,
           cov.covered_hours / nullif(cov.span_hours, 0) AS coverage,
           d.reliability2_last, d.reliability2_min
    FROM d
    LEFT JOIN reliability_by_instance b USING (account, instance_id)
    LEFT JOIN cov USING (account, instance_id)"""

_INCIDENTS = f"""
    SELECT account, instance_id, label, gpu_name, machine_id, host_id, started_at, ended_at,
           hours, statuses, is_ongoing,
           epoch(least(ended_at, $t1) - greatest(started_at, $t0)) / 3600.0 AS hours_in_window
    FROM incidents
    WHERE started_at < $t1 AND ended_at > $t0 AND {ACCOUNT_FILTER}"""

_STARTS = f"""
    SELECT account, instance_id, label, gpu_name, host_id, first_seen, starting_hours
    FROM reliability_by_instance
    WHERE first_seen >= $t0 AND first_seen < $t1 AND starting_hours > 0 AND {ACCOUNT_FILTER}"""

# `_INSTANCES` scans instance_intervals: it runs once, into a temporary table of the
# report's own (read-only) connection, and the totals, instances and hosts queries read that.
INSTANCES_TABLE = "_report_instances"
PREPARE = f"CREATE OR REPLACE TEMP TABLE {INSTANCES_TABLE} AS {_INSTANCES}"

QUERIES: dict[str, str] = {
    "totals": f"""
        SELECT coalesce(sum(observed_hours), 0) AS observed_hours,
               coalesce(sum(up_hours), 0) AS up_hours,
               coalesce(sum(down_hours), 0) AS down_hours,
               coalesce(sum(starting_hours), 0) AS starting_hours,
               sum(up_hours) / nullif(sum(up_hours) + sum(down_hours), 0) AS availability,
               sum(covered_hours) / nullif(sum(span_hours), 0) AS coverage,
               count(*) AS instances, count(DISTINCT host_id) AS hosts
        FROM {INSTANCES_TABLE}""",
    "incident_totals": f"""
        SELECT count(*) AS incidents, avg(hours) AS mttr_hours,
               coalesce(sum(hours_in_window), 0) AS hours_in_window,
               count(*) FILTER (WHERE is_ongoing) AS ongoing
        FROM ({_INCIDENTS})""",
    "start_totals": f"""
        SELECT count(*) AS starts, median(starting_hours) AS median_hours,
               avg(starting_hours) AS mean_hours, max(starting_hours) AS max_hours
        FROM ({_STARTS})""",
    "instances": f"""
        SELECT * FROM {INSTANCES_TABLE}
        ORDER BY availability ASC NULLS LAST, down_hours DESC, instance_id""",
    "hosts": f"""
        SELECT host_id, count(*) AS instances, count(DISTINCT machine_id) AS machines,
               sum(up_hours) AS up_hours, sum(down_hours) AS down_hours,
               sum(up_hours) / nullif(sum(up_hours) + sum(down_hours), 0) AS availability,
               sum(covered_hours) / nullif(sum(span_hours), 0) AS coverage,
               sum(incidents_started) AS incidents_started,
               min(reliability2_last) AS reliability2_last,
               min(reliability2_min) AS reliability2_min
        FROM {INSTANCES_TABLE} GROUP BY host_id
        ORDER BY availability ASC NULLS LAST, down_hours DESC, host_id""",
    "incidents": f"{_INCIDENTS} ORDER BY started_at, instance_id",
    # Alerts about no account (a failed Dagster run) show in every account's report.
    "alerts": """
        SELECT observed_at, state, rule, key, summary, delivery_status
        FROM alerts
        WHERE observed_at >= $t0 AND observed_at < $t1
            AND ($account::VARCHAR IS NULL OR account IS NULL OR account = $account::VARCHAR)
        ORDER BY observed_at, seq""",
    "starts": f"{_STARTS} ORDER BY starting_hours DESC, instance_id",
}

NOTES = (
    "Outages shorter than one collection interval (15 minutes by default) fall between two "
    "snapshots and are invisible here; an incident's length is only known to the nearest "
    "interval.",
    "Availability = up / (up + down) hours while the instance was meant to be running "
    "(intended status running); time spent starting (created, loading) is excluded and shown "
    "as time to running.",
    "Coverage = hours observed / hours the instance existed in the window: gaps in "
    "collection are neither up nor down, so read availability beside it.",
    "reliability2 is Vast.ai's score of the host's history (new hosts start at 0.6): a prior "
    "about the host, not a measurement of your instance.",
)


def build(con: duckdb.DuckDBPyConnection, window: Window, account: str | None,
          generated_at: datetime) -> Report:
    """Query every figure, then arrange headlines, charts and tables."""
    require_data(con, "reliability_daily", "day", window, account)
    params = window_params(window, account)
    fetch(con, PREPARE, params)
    q = {name: fetch(con, sql, params) for name, sql in QUERIES.items()}
    metrics = _metrics(q)
    return Report(
        kind="reliability", title="GPU fleet reliability report", window=window,
        account=account, generated_at=generated_at, metrics=metrics,
        sections=_sections(q, window), notes=list(NOTES), summary=_summary(q, metrics),
    )


def _summary(q: dict[str, list[dict]], metrics: list[Metric]) -> str:
    """One sentence first: availability with its coverage, incidents, the worst host."""
    m = {x.key: x.value for x in metrics}
    text = (f"Instances meant to run were up {fmt(m['availability'], 'pct')} of the observed "
            f"time (coverage {fmt(m['coverage'], 'pct')}); "
            f"{_plural(int(m['incidents']), 'incident')} cost "
            f"{fmt(m['down_hours'], 'hours')} down")
    worst = [r for r in q["hosts"] if r["availability"] is not None and r["down_hours"]]
    if worst:
        text += (f", the worst host {worst[0]['host_id']} at "
                 f"{fmt(worst[0]['availability'], 'pct')}")
    return text + "."


def _metrics(q: dict[str, list[dict]]) -> list[Metric]:
    t, inc, st = q["totals"][0], q["incident_totals"][0], q["start_totals"][0]
    mtbf = t["up_hours"] / inc["incidents"] if inc["incidents"] else None
    return [
        Metric("availability", "Fleet availability", t["availability"], "pct",
               f"{t['up_hours']:,.1f} h up, {t['down_hours']:,.1f} h down", headline=True),
        Metric("coverage", "Coverage", t["coverage"], "pct",
               "share of instance time observed by snapshots", headline=True),
        Metric("incidents", "Incidents", inc["incidents"], "count",
               f"{inc['ongoing']} ongoing" if inc["ongoing"] else "all resolved", headline=True),
        Metric("down_hours", "Hours down", t["down_hours"], "hours",
               f"over {_plural(t['instances'], 'instance')} on {_plural(t['hosts'], 'host')}",
               headline=True),
        Metric("mttr_hours", "Mean time to recover", inc["mttr_hours"], "hours",
               "mean incident length", headline=True),
        Metric("time_to_running_median", "Median time to running", st["median_hours"],
               "minutes", _plural(st["starts"], "instance") + " started in window",
               headline=True),
        Metric("up_hours", "Hours up", t["up_hours"], "hours"),
        Metric("observed_hours", "Hours observed", t["observed_hours"], "hours"),
        Metric("starting_hours", "Hours starting", t["starting_hours"], "hours"),
        Metric("mtbf_hours", "Mean time between failures", mtbf, "hours"),
        Metric("instances", "Instances observed", t["instances"], "count"),
        Metric("hosts", "Hosts", t["hosts"], "count"),
        Metric("time_to_running_mean", "Mean time to running", st["mean_hours"], "minutes"),
        Metric("time_to_running_max", "Longest time to running", st["max_hours"], "minutes"),
    ]


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _instance_name(r: dict[str, Any]) -> str:
    return f"{r['label'] or '(no label)'} #{r['instance_id']}"


def _sections(q: dict[str, list[dict]], window: Window) -> list[Section]:
    inst = [r for r in q["instances"] if r["availability"] is not None]
    hosts = [r for r in q["hosts"] if r["availability"] is not None]
    lanes = _timeline_rows(q["incidents"])
    return [
        Section("Incidents on a timeline",
                text="Each bar is one incident (consecutive snapshots where an instance meant "
                     "to run was not running), clipped to the window.",
                chart=lambda: charts().incident_timeline(window.start, window.end, lanes)),
        Section("Least available instances",
                chart=lambda: charts().availability_bars(
                    "instances", [(_instance_name(r), r["availability"]) for r in inst[:TOP]]),
                wide=False),
        Section("Least available hosts",
                chart=lambda: charts().availability_bars(
                    "hosts", [(f"host {r['host_id']}", r["availability"]) for r in hosts[:TOP]]),
                wide=False),
        Section("Observed availability vs host reliability2",
                text="Points under the diagonal did worse than the host's score suggests.",
                chart=lambda: charts().reliability_scatter(
                    [(r["reliability2_last"], r["availability"], r["observed_hours"])
                     for r in inst]),
                wide=False),
        Section("Time to running",
                text="From an instance's first snapshot until it was first seen running.",
                table=_starts_table(q["starts"]), wide=False),
        Section("Incidents", table=_incidents_table(q["incidents"])),
        Section("Alerts in the window",
                text="Transitions sent to the alert receivers (`vast-pipeline alerts`): "
                     "firing when a problem began, resolved when it cleared.",
                table=_alerts_table(q["alerts"])),
        Section("Worst hosts", table=_hosts_table(q["hosts"][:TOP])),
        Section("Availability per instance", table=_instances_table(q["instances"]),
                collapsed=True),
    ]


def _timeline_rows(incidents: list[dict]) -> list[dict]:
    """Incidents of the instances with the most down time in the window (one lane each)."""
    hours: dict[tuple, float] = {}
    for r in incidents:
        key = (r["account"], r["instance_id"])
        hours[key] = hours.get(key, 0.0) + r["hours_in_window"]
    keep = set(sorted(hours, key=lambda k: -hours[k])[:20])
    return [{**r, "lane": f"{_instance_name(r)} · host {r['host_id']}"}
            for r in incidents if (r["account"], r["instance_id"]) in keep]


def _incidents_table(rows: list[dict]) -> Table:
    shaped = [{**r, "status": ", ".join(r["statuses"] or []),
               "state": "ongoing" if r["is_ongoing"] else "resolved"} for r in rows]
    return Table("incidents", (
        Column("instance_id", "Instance"), Column("label", "Label"), Column("host_id", "Host"),
        Column("machine_id", "Machine"), Column("started_at", "Start (UTC)", "datetime"),
        Column("hours", "Duration", "hours"), Column("status", "Status seen"),
        Column("state", "State"),
    ), shaped, empty_text="No incidents in this window.")


def _alerts_table(rows: list[dict]) -> Table:
    return Table("alerts", (
        Column("observed_at", "When (UTC)", "datetime"), Column("state", "State"),
        Column("key", "Alert"), Column("summary", "Summary"),
        Column("delivery_status", "Delivery"),
    ), rows, empty_text="No alert fired or resolved in this window.")


def _hosts_table(rows: list[dict]) -> Table:
    return Table("hosts", (
        Column("host_id", "Host"), Column("instances", "Instances", "count"),
        Column("availability", "Availability", "pct"), Column("coverage", "Coverage", "pct"),
        Column("down_hours", "Down", "hours"),
        Column("incidents_started", "Incidents", "count"),
        Column("reliability2_last", "reliability2", "ratio"),
        Column("reliability2_min", "reliability2 min", "ratio"),
    ), rows)


def _starts_table(rows: list[dict]) -> Table:
    return Table("time_to_running", (
        Column("instance_id", "Instance"), Column("label", "Label"),
        Column("first_seen", "First seen (UTC)", "datetime"),
        Column("starting_hours", "Time to running", "minutes"),
    ), rows, empty_text="No instance started in this window.")


def _instances_table(rows: list[dict]) -> Table:
    return Table("instances", (
        Column("instance_id", "Instance"), Column("label", "Label"), Column("gpu_name", "GPU"),
        Column("host_id", "Host"), Column("availability", "Availability", "pct"),
        Column("coverage", "Coverage", "pct"), Column("up_hours", "Up", "hours"),
        Column("down_hours", "Down", "hours"),
        Column("incidents_started", "Incidents", "count"),
        Column("reliability2_last", "reliability2", "ratio"),
    ), rows)
