"""The cost report: what the fleet cost in a window, where the money went, what is wasted,
and how far the snapshot estimate is from the bill.

Spend is `spend_daily`: Vast.ai's bill for every account-day with a stored bill, the
estimate from snapshots only for the days not billed yet. Every figure comes from one of
the queries in `QUERIES` (the only place report SQL for cost lives), over the analyst tables
`spend_daily`, `cost_reconciliation`, `idle_spend`, `fleet_now` and `price_changes`; this
module only arranges the results into a `Report`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from pipeline.reports.model import Column, Metric, Report, Section, Table, charts, fmt
from pipeline.reports.source import ACCOUNT_FILTER, fetch, require_data, window_params
from pipeline.reports.window import Window, day_start

_IN_WINDOW = f"day BETWEEN $d0 AND $d1 AND {ACCOUNT_FILTER}"
# Volumes and other non-instance contracts have no GPU: name them by what they are.
_GPU_NAME = ("coalesce(gpu_name, if(contract_type = 'instance', 'unknown', "
             "contract_type || 's'))")
_SOURCE = ("CASE WHEN bool_and(cost_source = 'billed') THEN 'billed' "
           "WHEN bool_and(cost_source = 'estimated') THEN 'estimated' "
           "ELSE 'billed + estimated' END")
TOP_DIFFERENCES = 15

QUERIES: dict[str, str] = {
    "totals": f"""
        SELECT coalesce(sum(total_cost), 0) AS total, coalesce(sum(gpu_cost), 0) AS gpu,
               coalesce(sum(storage_cost), 0) AS storage,
               coalesce(sum(bandwidth_cost), 0) AS bandwidth,
               coalesce(sum(other_cost), 0) AS other,
               coalesce(sum(total_cost) FILTER (WHERE cost_source = 'billed'), 0) AS billed,
               coalesce(sum(total_cost) FILTER (WHERE cost_source = 'estimated'), 0)
                   AS estimated,
               max(day) FILTER (WHERE cost_source = 'billed') AS billed_through,
               min(day) FILTER (WHERE cost_source = 'estimated') AS estimated_from,
               count(DISTINCT day) FILTER (WHERE cost_source = 'billed') AS billed_days,
               bool_and(is_final) FILTER (WHERE cost_source = 'billed') AS all_final,
               coalesce(sum(gpu_hours), 0) AS gpu_hours,
               coalesce(sum(instance_hours), 0) AS running_hours,
               count(DISTINCT (account, instance_id)) AS instances
        FROM spend_daily WHERE {_IN_WINDOW}""",
    "bills_stored": f"""
        SELECT count(*) AS days FROM billed_days WHERE {ACCOUNT_FILTER}""",
    "month_to_date": f"""
        SELECT coalesce(sum(total_cost), 0) AS total
        FROM spend_daily WHERE day BETWEEN $m0 AND $d1 AND {ACCOUNT_FILTER}""",
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
               sum(c.bandwidth_cost) AS bandwidth_cost, sum(c.total_cost) AS total_cost,
               sum(c.gpu_hours) AS gpu_hours,
               coalesce(any_value(i.idle_cost), 0) AS idle_cost,
               {_SOURCE} AS cost_source
        FROM spend_daily c
        LEFT JOIN (SELECT day, sum(idle_cost) AS idle_cost
                   FROM idle_spend WHERE {_IN_WINDOW} GROUP BY day) i USING (day)
        WHERE c.day BETWEEN $d0 AND $d1 AND ($account::VARCHAR IS NULL
              OR c.account = $account::VARCHAR)
        GROUP BY c.day ORDER BY c.day""",
    "daily_by_gpu": f"""
        SELECT day, {_GPU_NAME} AS gpu_name, sum(total_cost) AS total_cost
        FROM spend_daily WHERE {_IN_WINDOW} GROUP BY ALL ORDER BY day, gpu_name""",
    "idle_daily": f"""
        SELECT day, sum(stopped_storage_cost) AS stopped_storage_cost,
               sum(idle_gpu_cost) AS idle_gpu_cost, sum(idle_cost) AS idle_cost
        FROM idle_spend WHERE {_IN_WINDOW} GROUP BY day ORDER BY day""",
    "instances": f"""
        WITH c AS (
            SELECT account, contract_type, contract_id AS instance_id,
                   coalesce(arg_max(label, day), if(contract_type = 'instance', NULL,
                            contract_type)) AS label,
                   arg_max({_GPU_NAME}, day) AS gpu_name, max(num_gpus) AS num_gpus,
                   bool_or(is_bid) AS is_bid, arg_max(host_id, day) AS host_id,
                   sum(instance_hours) AS running_hours, sum(gpu_hours) AS gpu_hours,
                   sum(gpu_cost) AS gpu_cost, sum(storage_cost) AS storage_cost,
                   sum(bandwidth_cost) AS bandwidth_cost, sum(total_cost) AS total_cost,
                   {_SOURCE} AS cost_source
            FROM spend_daily WHERE {_IN_WINDOW} GROUP BY account, contract_type, contract_id),
        i AS (
            SELECT account, instance_id, sum(idle_cost) AS idle_cost
            FROM idle_spend WHERE {_IN_WINDOW} GROUP BY account, instance_id)
        SELECT c.*, coalesce(i.idle_cost, 0) AS idle_cost,
               c.total_cost / nullif(c.gpu_hours, 0) AS cost_per_gpu_hour
        FROM c LEFT JOIN i ON c.account = i.account AND c.instance_id = i.instance_id
            AND c.contract_type = 'instance'
        ORDER BY total_cost DESC, instance_id""",
    "labels": f"""
        SELECT coalesce(label, '(no label)') AS label,
               count(DISTINCT (contract_type, contract_id)) AS instances,
               sum(gpu_hours) AS gpu_hours, sum(total_cost) AS total_cost
        FROM spend_daily WHERE {_IN_WINDOW} GROUP BY ALL ORDER BY total_cost DESC, label""",
    "price_changes": f"""
        SELECT changed_at, instance_id, label, gpu_name, is_bid, dph_total_before,
               dph_total_after, change_pct
        FROM price_changes
        WHERE changed_at >= $t0 AND changed_at < $t1 AND {ACCOUNT_FILTER}
        ORDER BY changed_at, instance_id""",
    # -- the bill against the estimate, on the account-days that have a bill
    "recon_totals": f"""
        SELECT coalesce(sum(billed_cost), 0) AS billed,
               coalesce(sum(estimated_cost), 0) AS estimated,
               coalesce(sum(bandwidth_cost), 0) AS bandwidth,
               coalesce(sum(billed_cost) FILTER (WHERE status = 'billed_only'), 0)
                   AS billed_only,
               count(*) FILTER (WHERE status = 'matched') AS matched,
               count(*) FILTER (WHERE status = 'differs') AS differs,
               count(*) FILTER (WHERE status = 'billed_only') AS billed_only_rows,
               count(*) FILTER (WHERE status = 'estimated_only') AS estimated_only_rows,
               -- the gap is measured only on account-days that also have snapshots: a day
               -- billed before collection started has no estimate to compare (NULL, not 0)
               coalesce(sum(billed_cost) FILTER (WHERE observed), 0) AS billed_observed,
               coalesce(sum(estimated_cost) FILTER (WHERE observed), 0) AS estimated_observed
        FROM (SELECT *, bool_or(estimated_cost IS NOT NULL)
                            OVER (PARTITION BY account, day) AS observed
              FROM cost_reconciliation WHERE day_billed AND {_IN_WINDOW})""",
    "recon_daily": f"""
        SELECT day, coalesce(sum(billed_cost), 0) AS billed_cost,
               coalesce(sum(estimated_cost), 0) AS estimated_cost,
               coalesce(sum(bandwidth_cost), 0) AS bandwidth_cost,
               coalesce(sum(billed_cost), 0) - coalesce(sum(estimated_cost), 0) AS difference,
               bool_and(is_final) AS is_final
        FROM cost_reconciliation WHERE day_billed AND {_IN_WINDOW}
        GROUP BY day ORDER BY day""",
    "recon_top": f"""
        SELECT day, instance_id, label, estimated_cost, billed_cost, difference,
               difference_pct, bandwidth_cost, status, likely_reason
        FROM cost_reconciliation
        WHERE day_billed AND status IN ('differs', 'estimated_only') AND {_IN_WINDOW}
        ORDER BY abs(coalesce(difference, estimated_cost)) DESC, day, instance_id
        LIMIT {TOP_DIFFERENCES}""",
    "recon_billed_only": f"""
        SELECT day, instance_id, label, billed_cost, bandwidth_cost, coverage, likely_reason
        FROM cost_reconciliation WHERE status = 'billed_only' AND {_IN_WINDOW}
        ORDER BY billed_cost DESC, day, instance_id""",
}

BANDWIDTH_NOTE = (
    "Bandwidth is not included: snapshots carry no per-interval byte counters, so upload and "
    "download charges cannot be estimated from them. Figures are estimates from 15-minute "
    "snapshots (GPU billed while running or frozen, storage in every state except offline), "
    "not Vast.ai invoices."
)
NO_BILLS_NOTE = (
    "No bills are stored yet: fetch Vast.ai's billed charges with `vast-pipeline charges` "
    "to turn these estimates into billed figures."
)
BILLED_NOTE = (
    "Billed figures are Vast.ai's charges per UTC day (GET /api/v0/charges/), bandwidth "
    "included; days without a stored bill are estimated from 15-minute snapshots (no "
    "bandwidth). Idle spend and the burn rate are always estimates from snapshots."
)
NOT_FINAL_NOTE = (
    "Some bills were fetched less than 48 hours after their day ended and may still change; "
    "fetch them again later."
)


def build(con: duckdb.DuckDBPyConnection, window: Window, account: str | None,
          generated_at: datetime) -> Report:
    """Query every figure, then arrange headlines, charts and tables."""
    require_data(con, "spend_daily", "day", window, account)
    params = window_params(window, account)
    q = {name: fetch(con, sql, params) for name, sql in QUERIES.items()}
    metrics = _metrics(q, window)
    return Report(
        kind="cost", title="GPU cost report", window=window, account=account,
        generated_at=generated_at, metrics=metrics, sections=_sections(q, window, metrics),
        notes=_notes(q), summary=_summary(q, window, metrics),
    )


def _notes(q: dict[str, list[dict]]) -> list[str]:
    totals = q["totals"][0]
    if not totals["billed_days"]:
        return [BANDWIDTH_NOTE, NO_BILLS_NOTE if not q["bills_stored"][0]["days"] else
                "No bill is stored for the days of this window yet; figures are estimates."]
    return [BILLED_NOTE] + ([] if totals["all_final"] else [NOT_FINAL_NOTE])


def spend_phrase(totals: dict[str, Any]) -> str:
    """'billed $10,934.12 to 2026-11-30 + estimated $412.50 since' (or only one part)."""
    if not totals["billed_days"]:
        return "estimated from snapshots"
    billed = f"billed {fmt(totals['billed'], 'usd')} to {totals['billed_through']}"
    if not totals["estimated"]:
        return billed
    since = totals["estimated_from"] > totals["billed_through"]
    return (f"{billed} + estimated {fmt(totals['estimated'], 'usd')} "
            + ("since" if since else "for the days not billed yet"))


def _summary(q: dict[str, list[dict]], window: Window, metrics: list[Metric]) -> str:
    """One sentence a team lead reads first: total, where it went, waste, where it heads."""
    m = {x.key: x.value for x in metrics}
    total = m["window_spend"] or 0.0
    by_gpu: dict[str, float] = {}
    for r in q["daily_by_gpu"]:
        by_gpu[r["gpu_name"]] = by_gpu.get(r["gpu_name"], 0.0) + (r["total_cost"] or 0.0)
    totals = q["totals"][0]
    parts = [f"Spent {fmt(total, 'usd')} over {len(window.days)} days "
             f"({fmt(total / len(window.days), 'usd')}/day: {spend_phrase(totals)}"
             + (f", bandwidth {fmt(totals['bandwidth'], 'usd')})" if totals["billed_days"]
                else "; bills not fetched yet, run `vast-pipeline charges`)")]
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
    recon = q["recon_totals"][0]
    gap = ((recon["billed_observed"] - recon["estimated_observed"]) / recon["billed_observed"]
           if recon["billed_observed"] else None)
    mtd = q["month_to_date"][0]["total"]
    projected, remaining = _projection(mtd, burn, window)
    month = window.month_start.strftime("%B %Y")
    per_gpu_hour = totals["total"] / totals["gpu_hours"] if totals["gpu_hours"] else None
    idle_share = idle["total"] / totals["total"] if totals["total"] else 0.0
    gpu_share = totals["gpu"] / totals["total"] if totals["total"] else 0.0
    return [
        Metric("window_spend", "Spend in window", totals["total"], "usd",
               f"{window.label()} ({len(window.days)} days): {spend_phrase(totals)}",
               headline=True),
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
        Metric("bandwidth_cost", "Bandwidth cost", totals["bandwidth"], "usd",
               "billed days only (snapshots cannot estimate it)"),
        Metric("other_cost", "Other billed charges", totals["other"], "usd"),
        Metric("billed_cost", "Billed", totals["billed"], "usd",
               f"{totals['billed_days']} days with a stored bill"
               + (f", to {totals['billed_through']}" if totals["billed_through"] else "")),
        Metric("estimated_cost", "Estimated (not billed yet)", totals["estimated"], "usd",
               "from snapshots"),
        Metric("estimate_gap", "Estimate below the bill", gap, "pct",
               "on the billed days that have snapshots: (billed - estimated) / billed"),
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
    split = {"GPU": by_key["gpu_cost"].value, "Storage": by_key["storage_cost"].value}
    split.update({k: by_key[key].value for k, key in (("Bandwidth", "bandwidth_cost"),
                                                      ("Other", "other_cost"))
                  if by_key[key].value})
    days = window.days
    instances, labels = q["instances"], q["labels"]
    return [
        Section("Daily spend by GPU model",
                chart=lambda: charts().stacked_daily(days, q["daily_by_gpu"], "gpu_name",
                                                   "total_cost"),
                table=_daily_table(q["daily"]), collapsed=True),
        Section("GPU vs storage" if len(split) == 2 else "GPU, storage and bandwidth",
                text=", ".join(f"{k} {fmt(v, 'usd')}" for k, v in split.items()) + ".",
                chart=lambda: charts().split_donut(split), wide=False),
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
        *_reconciliation_sections(q, days),
        Section("Price changes in the window",
                text="Changes of an instance's total hourly price (bid instances follow the "
                     "market).",
                table=_price_table(q["price_changes"])),
    ]


def _reconciliation_sections(q: dict[str, list[dict]], days: list) -> list[Section]:
    """Bill vs estimate per day, the largest differences and the instances only billed."""
    r = q["recon_totals"][0]
    if not q["recon_daily"]:
        return []
    gap = r["billed"] - r["estimated"]
    text = (f"On the billed days the bill is {fmt(r['billed'], 'usd')} and the estimate from "
            f"snapshots {fmt(r['estimated'], 'usd')}: {fmt(gap, 'usd')} "
            f"({100 * gap / r['billed']:.2f}% of the bill)" if r["billed"] else "")
    text += (f", of which bandwidth {fmt(r['bandwidth'], 'usd')} and instances only in the "
             f"bill {fmt(r['billed_only'], 'usd')}. {r['matched']} instance-days match, "
             f"{r['differs']} differ, {r['billed_only_rows']} are only in the bill, "
             f"{r['estimated_only_rows']} only in the estimate.")
    return [
        Section("Billed vs estimated", text=text,
                chart=lambda: charts().paired_daily(days, q["recon_daily"], {
                    "billed_cost": "Billed", "estimated_cost": "Estimated"}),
                table=_recon_daily_table(q["recon_daily"])),
        Section("Largest differences between bill and estimate",
                text="Per instance and day, with the likely reason (see README, "
                     "cost_reconciliation).",
                table=_recon_top_table(q["recon_top"])),
        Section("Only in the bill",
                text="Instances billed on a day no snapshot saw them: shorter than a "
                     "snapshot interval, or a collection was missed.",
                table=_billed_only_table(q["recon_billed_only"])),
    ]


def _recon_daily_table(rows: list[dict]) -> Table:
    return Table("reconciliation_daily", (
        Column("day", "Day", "date"), Column("billed_cost", "Billed", "usd"),
        Column("estimated_cost", "Estimated", "usd"), Column("difference", "Difference", "usd"),
        Column("bandwidth_cost", "Bandwidth", "usd"), Column("is_final", "Final"),
    ), rows)


def _recon_top_table(rows: list[dict]) -> Table:
    return Table("reconciliation_differences", (
        Column("day", "Day", "date"), Column("instance_id", "Instance"),
        Column("label", "Label"), Column("estimated_cost", "Estimated", "usd"),
        Column("billed_cost", "Billed", "usd"), Column("difference", "Difference", "usd"),
        Column("difference_pct", "Difference %", "percent"),
        Column("likely_reason", "Likely reason"),
    ), rows, empty_text="Bill and estimate agree on every billed instance-day.")


def _billed_only_table(rows: list[dict]) -> Table:
    return Table("billed_only", (
        Column("day", "Day", "date"), Column("instance_id", "Instance"),
        Column("label", "Label"), Column("billed_cost", "Billed", "usd"),
        Column("bandwidth_cost", "Bandwidth", "usd"), Column("coverage", "Coverage", "pct"),
        Column("likely_reason", "Likely reason"),
    ), rows, empty_text="No instance is only in the bill.")


def _instance_name(row: dict[str, Any]) -> str:
    return f"{row['label'] or '(no label)'} #{row['instance_id']}"


def _daily_table(rows: list[dict]) -> Table:
    return Table("daily", (
        Column("day", "Day", "date"), Column("gpu_cost", "GPU", "usd"),
        Column("storage_cost", "Storage", "usd"), Column("bandwidth_cost", "Bandwidth", "usd"),
        Column("total_cost", "Total", "usd"), Column("idle_cost", "Idle", "usd"),
        Column("gpu_hours", "GPU-hours", "hours"), Column("cost_source", "Source"),
    ), rows)


def _instances_table(rows: list[dict]) -> Table:
    shaped = [{**r, "gpu": f"{r['num_gpus'] or '?'}x {r['gpu_name'] or 'unknown'}",
               "pricing": "bid" if r["is_bid"] else "on-demand"} for r in rows]
    return Table("instances", (
        Column("label", "Label"), Column("instance_id", "Instance"), Column("gpu", "GPU"),
        Column("pricing", "Pricing"), Column("running_hours", "Running", "hours"),
        Column("gpu_hours", "GPU-hours", "hours"), Column("gpu_cost", "GPU", "usd"),
        Column("storage_cost", "Storage", "usd"), Column("bandwidth_cost", "Bandwidth", "usd"),
        Column("total_cost", "Cost", "usd"), Column("idle_cost", "Idle", "usd"),
        Column("cost_per_gpu_hour", "$/GPU-hour", "usd_per_gpu_hour"),
        Column("cost_source", "Source"),
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
