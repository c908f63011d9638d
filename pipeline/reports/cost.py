"""The cost report: what the fleet cost in a window, where the money went, what is wasted.

Every figure comes from one of the queries in `QUERIES` (the only place report SQL for
cost lives), over the analyst tables `cost_daily`, `idle_spend`, `fleet_now` and
`price_changes`; this module only arranges the results into a `Report`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from pipeline.reports.model import Column, Metric, Report, Section, Table, charts, fmt
from pipeline.reports.source import ACCOUNT_FILTER, fetch, require_data, window_params
from pipeline.reports.window import Window, day_start

_IN_WINDOW = f"day BETWEEN $d0 AND $d1 AND {ACCOUNT_FILTER}"

QUERIES: dict[str, str] = {
    "totals": f"""
        SELECT coalesce(sum(total_cost), 0) AS total, coalesce(sum(gpu_cost), 0) AS gpu,
               coalesce(sum(storage_cost), 0) AS storage,
               coalesce(sum(gpu_hours), 0) AS gpu_hours,
               coalesce(sum(running_hours), 0) AS running_hours,
               count(DISTINCT (account, instance_id)) AS instances
        FROM cost_daily WHERE {_IN_WINDOW}""",
    "month_to_date": f"""
        SELECT coalesce(sum(total_cost), 0) AS total
        FROM cost_daily WHERE day BETWEEN $m0 AND $d1 AND {ACCOUNT_FILTER}""",
    "burn": f"""
        SELECT coalesce(sum(burn_rate_per_hour), 0) AS per_hour, max(snapshot_at) AS as_of,
               count(*) FILTER (WHERE actual_status = 'running') AS running
        FROM fleet_now WHERE {ACCOUNT_FILTER}""",
    "idle": f"""
        SELECT coalesce(sum(idle_cost), 0) AS total,
               coalesce(sum(stopped_storage_cost), 0) AS stopped_storage,
               coalesce(sum(idle_gpu_cost), 0) AS idle_gpu
        FROM idle_spend WHERE {_IN_WINDOW}""",
    "daily": f"""
        SELECT c.day, sum(c.gpu_cost) AS gpu_cost, sum(c.storage_cost) AS storage_cost,
               sum(c.total_cost) AS total_cost, sum(c.gpu_hours) AS gpu_hours,
               coalesce(any_value(i.idle_cost), 0) AS idle_cost
        FROM cost_daily c
        LEFT JOIN (SELECT day, sum(idle_cost) AS idle_cost
                   FROM idle_spend WHERE {_IN_WINDOW} GROUP BY day) i USING (day)
        WHERE c.day BETWEEN $d0 AND $d1 AND ($account::VARCHAR IS NULL
              OR c.account = $account::VARCHAR)
        GROUP BY c.day ORDER BY c.day""",
    "daily_by_gpu": f"""
        SELECT day, coalesce(gpu_name, 'unknown') AS gpu_name, sum(total_cost) AS total_cost
        FROM cost_daily WHERE {_IN_WINDOW} GROUP BY ALL ORDER BY day, gpu_name""",
    "idle_daily": f"""
        SELECT day, sum(stopped_storage_cost) AS stopped_storage_cost,
               sum(idle_gpu_cost) AS idle_gpu_cost, sum(idle_cost) AS idle_cost
        FROM idle_spend WHERE {_IN_WINDOW} GROUP BY day ORDER BY day""",
    "instances": f"""
        WITH c AS (
            SELECT account, instance_id, arg_max(label, day) AS label,
                   arg_max(gpu_name, day) AS gpu_name, max(num_gpus) AS num_gpus,
                   bool_or(is_bid) AS is_bid, arg_max(host_id, day) AS host_id,
                   sum(running_hours) AS running_hours, sum(gpu_hours) AS gpu_hours,
                   sum(gpu_cost) AS gpu_cost, sum(storage_cost) AS storage_cost,
                   sum(total_cost) AS total_cost
            FROM cost_daily WHERE {_IN_WINDOW} GROUP BY account, instance_id),
        i AS (
            SELECT account, instance_id, sum(idle_cost) AS idle_cost
            FROM idle_spend WHERE {_IN_WINDOW} GROUP BY account, instance_id)
        SELECT c.*, coalesce(i.idle_cost, 0) AS idle_cost,
               c.total_cost / nullif(c.gpu_hours, 0) AS cost_per_gpu_hour
        FROM c LEFT JOIN i USING (account, instance_id)
        ORDER BY total_cost DESC, instance_id""",
    "labels": f"""
        SELECT coalesce(label, '(no label)') AS label, count(DISTINCT instance_id) AS instances,
               sum(gpu_hours) AS gpu_hours, sum(total_cost) AS total_cost
        FROM cost_daily WHERE {_IN_WINDOW} GROUP BY ALL ORDER BY total_cost DESC, label""",
    "price_changes": f"""
        SELECT changed_at, instance_id, label, gpu_name, is_bid, dph_total_before,
               dph_total_after, change_pct
        FROM price_changes
        WHERE changed_at >= $t0 AND changed_at < $t1 AND {ACCOUNT_FILTER}
        ORDER BY changed_at, instance_id""",
}

BANDWIDTH_NOTE = (
    "Bandwidth is not included: snapshots carry no per-interval byte counters, so upload and "
    "download charges cannot be estimated from them. Figures are estimates from 15-minute "
    "snapshots (GPU billed while running or frozen, storage in every state except offline), "
    "not Vast.ai invoices."
)


def build(con: duckdb.DuckDBPyConnection, window: Window, account: str | None,
          generated_at: datetime) -> Report:
    """Query every figure, then arrange headlines, charts and tables."""
    require_data(con, "cost_daily", "day", window, account)
    params = window_params(window, account)
    q = {name: fetch(con, sql, params) for name, sql in QUERIES.items()}
    metrics = _metrics(q, window)
    return Report(
        kind="cost", title="GPU cost report", window=window, account=account,
        generated_at=generated_at, metrics=metrics, sections=_sections(q, window, metrics),
        notes=[BANDWIDTH_NOTE], summary=_summary(q, window, metrics),
    )


def _summary(q: dict[str, list[dict]], window: Window, metrics: list[Metric]) -> str:
    """One sentence a team lead reads first: total, where it went, waste, where it heads."""
    m = {x.key: x.value for x in metrics}
    total = m["window_spend"] or 0.0
    by_gpu: dict[str, float] = {}
    for r in q["daily_by_gpu"]:
        by_gpu[r["gpu_name"]] = by_gpu.get(r["gpu_name"], 0.0) + (r["total_cost"] or 0.0)
    parts = [f"Spent {fmt(total, 'usd')} over {len(window.days)} days "
             f"({fmt(total / len(window.days), 'usd')}/day)"]
    if by_gpu and total > 0:
        gpu = max(by_gpu, key=lambda k: by_gpu[k])
        parts.append(f"{100 * by_gpu[gpu] / total:.0f}% of it on {gpu}")
    if q["labels"]:
        top = q["labels"][0]
        parts.append(f"top label {top['label']} ({fmt(top['total_cost'], 'usd')})")
    idle_share = (m["idle_spend"] or 0.0) / total if total else 0.0
    return (", ".join(parts) + f". Idle spend {fmt(m['idle_spend'], 'usd')} "
            f"({100 * idle_share:.1f}%). At the current burn rate of "
            f"{fmt(m['burn_rate_per_hour'], 'usd_per_hour')}, "
            f"{window.month_start.strftime('%B')} ends near {fmt(m['projected_month'], 'usd')}.")


def _projection(month_to_date: float, burn: dict[str, Any], window: Window) -> tuple[float, float]:
    """Month to date + today's burn rate x the hours left in the month after the data ends.

    The data ends at the newest snapshot, or at the end of the window when the window
    ends earlier; the burn rate is the fleet as it runs now (`fleet_now`).
    """
    as_of = burn.get("as_of")
    data_end = min(window.end, as_of) if as_of is not None else window.end
    data_end = max(data_end, day_start(window.month_start))
    remaining = max(0.0, (window.month_end - data_end).total_seconds() / 3600.0)
    return month_to_date + burn["per_hour"] * remaining, remaining


def _metrics(q: dict[str, list[dict]], window: Window) -> list[Metric]:
    totals, idle, burn = q["totals"][0], q["idle"][0], q["burn"][0]
    mtd = q["month_to_date"][0]["total"]
    projected, remaining = _projection(mtd, burn, window)
    month = window.month_start.strftime("%B %Y")
    per_gpu_hour = totals["total"] / totals["gpu_hours"] if totals["gpu_hours"] else None
    idle_share = idle["total"] / totals["total"] if totals["total"] else 0.0
    gpu_share = totals["gpu"] / totals["total"] if totals["total"] else 0.0
    return [
        Metric("window_spend", "Spend in window", totals["total"], "usd",
               f"{window.label()} ({len(window.days)} days)", headline=True),
        Metric("month_to_date", "Month to date", mtd, "usd",
               f"{window.month_start} to {window.date_to}", headline=True),
        Metric("projected_month", f"Projected {month}", projected, "usd",
               f"month to date + {fmt(burn['per_hour'], 'usd_per_hour')} now "
               f"× {remaining:,.0f} h left", headline=True),
        Metric("cost_per_gpu_hour", "Average per GPU-hour", per_gpu_hour, "usd_per_gpu_hour",
               f"{totals['gpu_hours']:,.0f} GPU-hours", headline=True),
        Metric("idle_spend", "Idle spend", idle["total"], "usd",
               f"{100 * idle_share:.1f}% of spend: stopped storage + idle GPUs", headline=True),
        Metric("burn_rate_per_hour", "Burn rate now", burn["per_hour"], "usd_per_hour",
               f"{fmt(24 * burn['per_hour'], 'usd')}/day, "
               f"{fmt(730 * burn['per_hour'], 'usd')}/month", headline=True),
        Metric("gpu_cost", "GPU cost", totals["gpu"], "usd", f"{100 * gpu_share:.1f}%"),
        Metric("storage_cost", "Storage cost", totals["storage"], "usd"),
        Metric("gpu_hours", "GPU-hours", totals["gpu_hours"], "hours"),
        Metric("running_hours", "Instance running hours", totals["running_hours"], "hours"),
        Metric("instances", "Instances billed", totals["instances"], "count"),
        Metric("idle_stopped_storage", "Storage of stopped instances",
               idle["stopped_storage"], "usd"),
        Metric("idle_gpu", "GPUs billed while idle", idle["idle_gpu"], "usd"),
        Metric("burn_per_day", "Burn rate now, per day", 24 * burn["per_hour"], "usd"),
        Metric("burn_per_month", "Burn rate now, per month (x730)",
               730 * burn["per_hour"], "usd"),
    ]


def _sections(q: dict[str, list[dict]], window: Window, metrics: list[Metric]) -> list[Section]:
    by_key = {m.key: m for m in metrics}
    days = window.days
    instances, labels = q["instances"], q["labels"]
    return [
        Section("Daily spend by GPU model",
                chart=lambda: charts().stacked_daily(days, q["daily_by_gpu"], "gpu_name",
                                                   "total_cost"),
                table=_daily_table(q["daily"]), collapsed=True),
        Section("GPU vs storage",
                text=f"GPU {fmt(by_key['gpu_cost'].value, 'usd')}, storage "
                     f"{fmt(by_key['storage_cost'].value, 'usd')}.",
                chart=lambda: charts().split_donut({"GPU": by_key["gpu_cost"].value,
                                                "Storage": by_key["storage_cost"].value}),
                wide=False),
        Section("Idle spend by day",
                text="Storage paid while an instance is stopped, and GPUs billed while "
                     "their utilisation stays under 5%.",
                chart=lambda: charts().stacked_columns(days, q["idle_daily"], {
                    "stopped_storage_cost": "Stopped storage", "idle_gpu_cost": "Idle GPU"}),
                wide=False),
        Section("Top instances by spend",
                chart=lambda: charts().top_bars(
                    [(_instance_name(r), r["total_cost"]) for r in instances[:10]]),
                wide=False),
        Section("Top labels by spend",
                chart=lambda: charts().top_bars([(r["label"], r["total_cost"])
                                               for r in labels[:10]]),
                wide=False),
        Section("Spend per instance", table=_instances_table(instances)),
        Section("Spend per label", table=_labels_table(labels), collapsed=True),
        Section("Price changes in the window",
                text="Changes of an instance's total hourly price (bid instances follow the "
                     "market).",
                table=_price_table(q["price_changes"])),
    ]


def _instance_name(row: dict[str, Any]) -> str:
    return f"{row['label'] or '(no label)'} #{row['instance_id']}"


def _daily_table(rows: list[dict]) -> Table:
    return Table("daily", (
        Column("day", "Day", "date"), Column("gpu_cost", "GPU", "usd"),
        Column("storage_cost", "Storage", "usd"), Column("total_cost", "Total", "usd"),
        Column("idle_cost", "Idle", "usd"), Column("gpu_hours", "GPU-hours", "hours"),
    ), rows)


def _instances_table(rows: list[dict]) -> Table:
    shaped = [{**r, "gpu": f"{r['num_gpus'] or '?'}x {r['gpu_name'] or 'unknown'}",
               "pricing": "bid" if r["is_bid"] else "on-demand"} for r in rows]
    return Table("instances", (
        Column("label", "Label"), Column("instance_id", "Instance"), Column("gpu", "GPU"),
        Column("pricing", "Pricing"), Column("running_hours", "Running", "hours"),
        Column("gpu_hours", "GPU-hours", "hours"), Column("gpu_cost", "GPU", "usd"),
        Column("storage_cost", "Storage", "usd"), Column("total_cost", "Cost", "usd"),
        Column("idle_cost", "Idle", "usd"),
        Column("cost_per_gpu_hour", "$/GPU-hour", "usd_per_gpu_hour"),
    ), shaped)


def _labels_table(rows: list[dict]) -> Table:
    return Table("labels", (
        Column("label", "Label"), Column("instances", "Instances", "count"),
        Column("gpu_hours", "GPU-hours", "hours"), Column("total_cost", "Cost", "usd"),
    ), rows)


def _price_table(rows: list[dict]) -> Table:
    return Table("price_changes", (
        Column("changed_at", "When (UTC)", "datetime"), Column("instance_id", "Instance"),
        Column("label", "Label"), Column("gpu_name", "GPU"),
        Column("dph_total_before", "Before", "usd_per_hour"),
        Column("dph_total_after", "After", "usd_per_hour"),
        Column("change_pct", "Change", "percent"),
    ), rows, empty_text="No price changes in this window.")
