"""The reliability report: was the fleet up when it should have been, and where not.

Availability always comes with coverage beside it (gaps in collection would otherwise
inflate it, the Prometheus `avg_over_time` trap), and the host's `reliability2` is shown
next to what we observed, because it is a prior about the host, not a measurement of the
user's instance. Every figure is a column of the `report_reliability_*`, `report_incidents`
and `report_time_to_running` marts (sql/), read by `QUERIES`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from pipeline.reports.model import Column, Metric, Report, Section, Table, charts, fmt
from pipeline.reports.source import fetch, require_data, window_params
from pipeline.reports.window import Window

# Every mart is called over the report's window: `report_<name>(first day, last day, account)`.
_WINDOW_ARGS = "$d0, $d1, account_name := $account::VARCHAR"
TOP = 15

QUERIES: dict[str, str] = {
    "summary": f"SELECT * FROM report_reliability_summary({_WINDOW_ARGS})",
    "instances": f"""
        SELECT * FROM report_reliability_by_instance({_WINDOW_ARGS}) ORDER BY availability_rank""",
    "hosts": f"SELECT * FROM report_reliability_by_host({_WINDOW_ARGS}) ORDER BY availability_rank",
    "incidents": f"""
        SELECT * FROM report_incidents({_WINDOW_ARGS}) ORDER BY started_at, instance_id""",
    # Alerts about no account (a failed Dagster run) show in every account's report.
    "alerts": """
        SELECT observed_at, state, rule, key, summary, delivery_status
        FROM alerts
        WHERE observed_at >= $t0 AND observed_at < $t1
            AND ($account::VARCHAR IS NULL OR account IS NULL OR account = $account::VARCHAR)
        ORDER BY observed_at, seq""",
    "alert_summary": f"SELECT * FROM report_alert_summary({_WINDOW_ARGS})",
    "alerts_firing": """
        SELECT fired_at, started_at, rule, key, summary, delivery_status
        FROM alerts_firing
        WHERE $account::VARCHAR IS NULL OR account IS NULL OR account = $account::VARCHAR
        ORDER BY started_at, key""",
    "starts": f"""
        SELECT * FROM report_time_to_running({_WINDOW_ARGS})
        ORDER BY reached_running DESC, time_to_running_hours DESC, first_seen, instance_id""",
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
    q = {name: fetch(con, sql, params) for name, sql in QUERIES.items()}
    metrics = _metrics(q["summary"][0])
    return Report(
        kind="reliability", title="GPU fleet reliability report", window=window,
        account=account, generated_at=generated_at, metrics=metrics,
        sections=_sections(q, window), notes=list(NOTES), summary=_summary(q),
    )


def _summary(q: dict[str, list[dict]]) -> str:
    """One sentence first: availability with its coverage, incidents, the worst host."""
    s = q["summary"][0]
    text = (f"Instances meant to run were up {fmt(s['availability'], 'pct')} of the observed "
            f"time (coverage {fmt(s['coverage'], 'pct')}); "
            f"{_plural(s['incidents'], 'incident')} cost "
            f"{fmt(s['down_hours'], 'hours')} down")
    worst = [r for r in q["hosts"] if r["availability"] is not None and r["down_hours"]]
    if worst:
        text += (f", the worst host {worst[0]['host_id']} at "
                 f"{fmt(worst[0]['availability'], 'pct')}")
    return text + "."


def _metrics(s: dict[str, Any]) -> list[Metric]:
    """Every figure is a column of report_reliability_summary."""
    starts = (f"{s['starts_reached_running']} of {_plural(s['starts'], 'instance')} first seen "
              "in the window reached running")
    return [
        Metric("availability", "Fleet availability", s["availability"], "pct",
               f"{s['up_hours']:,.1f} h up, {s['down_hours']:,.1f} h down while meant to run",
               headline=True),
        Metric("coverage", "Coverage", s["coverage"], "pct",
               "share of instance time observed by snapshots", headline=True),
        Metric("incidents", "Incidents", s["incidents"], "count",
               "overlapping the window, "
               + (f"{s['incidents_ongoing']} ongoing" if s["incidents_ongoing"]
                  else "all resolved"), headline=True),
        Metric("down_hours", "Hours down", s["down_hours"], "hours",
               f"over {_plural(s['instances'], 'instance')} on {_plural(s['hosts'], 'host')}",
               headline=True),
        Metric("mttr_hours", "Mean time to recover", s["mttr_hours"], "hours",
               "mean length of those incidents", headline=True),
        Metric("time_to_running_median", "Median time to running", s["time_to_running_median"],
               "minutes", starts, headline=True),
        Metric("up_hours", "Hours up", s["up_hours"], "hours"),
        Metric("observed_hours", "Hours observed", s["observed_hours"], "hours"),
        Metric("starting_hours", "Hours starting", s["starting_hours"], "hours"),
        Metric("mtbf_hours", "Mean time between failures", s["mtbf_hours"], "hours",
               "hours up / incidents"),
        Metric("instances", "Instances observed", s["instances"], "count"),
        Metric("hosts", "Hosts", s["hosts"], "count"),
        Metric("starts", "Instances first seen", s["starts"], "count"),
        Metric("starts_reached_running", "Of them reached running",
               s["starts_reached_running"], "count"),
        Metric("time_to_running_mean", "Mean time to running", s["time_to_running_mean"],
               "minutes"),
        Metric("time_to_running_max", "Longest time to running", s["time_to_running_max"],
               "minutes"),
    ]


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _instance_name(r: dict[str, Any]) -> str:
    return f"{r['label'] or '(no label)'} #{r['instance_id']}"


def _top(rows: list[dict], n: int, total_key: str, noun: str) -> str:
    """'the 15 least available of 42 hosts' (or 'all 7 hosts'), from a mart's count column."""
    total = rows[0][total_key] if rows else 0
    return f"all {total} {noun}" if total <= n else f"the {n} least available of {total} {noun}"


def _sections(q: dict[str, list[dict]], window: Window) -> list[Section]:
    inst = [r for r in q["instances"] if r["availability"] is not None]
    hosts = [r for r in q["hosts"] if r["availability"] is not None]
    lanes = _timeline_rows(q["incidents"], q["instances"])
    s = q["summary"][0]
    scope = f"{window.label()}, instances meant to run"
    return [
        Section("Incidents on a timeline",
                text="Each bar is one incident (consecutive snapshots where an instance meant "
                     f"to run was not running), clipped to {window.label()}"
                     + (f"; the {LANES} instances with the most hours down of "
                        f"{len({(r['account'], r['instance_id']) for r in q['incidents']})}"
                        if len(lanes) < len(q["incidents"]) else "") + ".",
                chart=lambda: charts().incident_timeline(window.start, window.end, lanes)),
        Section("Least available instances",
                text=f"Availability (up / (up + down) hours), "
                     f"{_top(inst, TOP, 'instances', 'instances')} observed; {scope}.",
                chart=lambda: charts().availability_bars(
                    "instances", [(_instance_name(r), r["availability"]) for r in inst[:TOP]]),
                wide=False),
        Section("Least available hosts",
                text=f"Availability, {_top(hosts, TOP, 'hosts', 'hosts')}; {scope}.",
                chart=lambda: charts().availability_bars(
                    "hosts", [(f"host {r['host_id']}", r["availability"]) for r in hosts[:TOP]]),
                wide=False),
        Section("Observed availability vs host reliability2",
                text="Points under the diagonal did worse than the host's score suggests "
                     f"({len(inst)} instances, {window.label()}).",
                chart=lambda: charts().reliability_scatter(
                    [(r["reliability2_last"], r["availability"], r["observed_hours"])
                     for r in inst]),
                wide=False),
        Section("Time to running",
                text="From an instance's first snapshot until it was first seen running, for "
                     f"the {_plural(s['starts'], 'instance')} first seen in {window.label()}: "
                     f"{s['starts_reached_running']} reached running"
                     + (", the others never did (shown as never ran)."
                        if s["starts"] > s["starts_reached_running"] else "."),
                table=_starts_table(q["starts"]), wide=False),
        Section("Incidents", text=f"Every incident overlapping {window.label()} "
                                  f"({len(q['incidents'])}); durations are whole incidents.",
                table=_incidents_table(q["incidents"])),
        *_alert_sections(q, window),
        Section("Worst hosts", text=f"{_top(hosts, TOP, 'hosts', 'hosts').capitalize()}; "
                                    f"{scope}. Incidents: those started in the window.",
                table=_hosts_table(q["hosts"][:TOP])),
        Section("Availability per instance",
                text=f"Every instance observed in {window.label()} ({len(q['instances'])}).",
                table=_instances_table(q["instances"]), collapsed=True),
    ]


LANES = 20


def _alert_sections(q: dict[str, list[dict]], window: Window) -> list[Section]:
    """What the alert rules saw: 'not evaluated' is never shown as 'nothing fired'."""
    a = q["alert_summary"][0]
    if not a["evaluations_ever"]:
        return [Section("Alerts", text="The alert rules were never evaluated on this data "
                        "home, so this report cannot say whether anything fired: they run "
                        "with `vast-pipeline collect` and the Dagster schedules.")]
    last = (f"last evaluated at {fmt(a['last_evaluated_at'], 'datetime')} UTC on data as of "
            f"{fmt(a['last_data_as_of'], 'datetime')}")
    if a["evaluations_in_window"]:
        watched = (f"The alert rules were evaluated {_plural(a['evaluations_in_window'], 'time')}"
                   f" on data of {window.label()} ({last}).")
        empty = "No alert fired or resolved in this window."
    else:
        watched = f"The alert rules were not evaluated on data of {window.label()} ({last})."
        empty = "Not evaluated in this window: nothing is known of what would have fired."
    return [
        Section("Alerts firing now",
                text=f"{_plural(a['firing_now'], 'alert')} firing as of the newest evaluation "
                     f"({last}).",
                table=_firing_table(q["alerts_firing"])),
        Section("Alerts in the window",
                text=f"{watched} Transitions queued for the alert receivers (delivery "
                     "'no receiver' when none is configured): firing when a problem began, "
                     "resolved when it cleared.",
                table=_alerts_table(q["alerts"], empty)),
    ]


def _firing_table(rows: list[dict]) -> Table:
    return Table("alerts_firing", (
        Column("started_at", "Since (UTC)", "datetime"), Column("key", "Alert"),
        Column("summary", "Summary"), Column("delivery_status", "Delivery"),
    ), rows, empty_text="Nothing is firing.")


def _timeline_rows(incidents: list[dict], instances: list[dict]) -> list[dict]:
    """Incidents of the LANES instances with the most hours down in the window (one lane
    each), ranked by report_reliability_by_instance.down_hours."""
    hit = {(r["account"], r["instance_id"]) for r in incidents}
    ranked = sorted((r for r in instances if (r["account"], r["instance_id"]) in hit),
                    key=lambda r: (-r["down_hours"], r["availability_rank"]))
    keep = {(r["account"], r["instance_id"]) for r in ranked[:LANES]}
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


def _alerts_table(rows: list[dict], empty_text: str) -> Table:
    return Table("alerts", (
        Column("observed_at", "When (UTC)", "datetime"), Column("state", "State"),
        Column("key", "Alert"), Column("summary", "Summary"),
        Column("delivery_status", "Delivery"),
    ), rows, empty_text=empty_text)


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
    shaped = [{**r, "reached": "running" if r["reached_running"] else "never ran"}
              for r in rows]
    return Table("time_to_running", (
        Column("instance_id", "Instance"), Column("label", "Label"),
        Column("first_seen", "First seen (UTC)", "datetime"),
        Column("time_to_running_hours", "Time to running", "minutes"),
        Column("reached", "Reached"),
    ), shaped, empty_text="No instance was first seen in this window.")


def _instances_table(rows: list[dict]) -> Table:
    return Table("instances", (
        Column("instance_id", "Instance"), Column("label", "Label"), Column("gpu_name", "GPU"),
        Column("host_id", "Host"), Column("availability", "Availability", "pct"),
        Column("coverage", "Coverage", "pct"), Column("up_hours", "Up", "hours"),
        Column("down_hours", "Down", "hours"),
        Column("incidents_started", "Incidents", "count"),
        Column("reliability2_last", "reliability2", "ratio"),
    ), rows)
