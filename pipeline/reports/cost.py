"""The cost report: what the fleet cost in a window, where the money went, what is wasted,
and how far the snapshot estimate is from the bill.

Spend is `spend_daily`: Vast.ai's bill for every account-day with a stored bill, the
estimate from snapshots only for the days not billed yet. Every figure is a column of a
warehouse mart called over the report's window (`report_cost_*`, `report_reconciliation_*`
in sql/, the same the demo's console reads) or a row of `cost_reconciliation` and
`price_changes`; `QUERIES` names them all, and this module only formats, sorts and cuts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from pipeline.reports.market import market_sections
from pipeline.reports.model import Column, Metric, Report, Section, Table, charts, fmt
from pipeline.reports.source import ACCOUNT_FILTER, fetch, require_data, window_params
from pipeline.reports.window import Window

_IN_WINDOW = f"day BETWEEN $d0 AND $d1 AND {ACCOUNT_FILTER}"
# Every mart is called over the report's window: `report_<name>(first day, last day, account)`.
_WINDOW_ARGS = "$d0, $d1, account_name := $account::VARCHAR"
TOP_DIFFERENCES = 15
TOP_CHART = 10

QUERIES: dict[str, str] = {
    "summary": f"SELECT * FROM report_cost_summary({_WINDOW_ARGS})",
    "daily": f"SELECT * FROM report_cost_by_day({_WINDOW_ARGS}) ORDER BY day",
    "by_gpu": f"SELECT * FROM report_cost_by_gpu({_WINDOW_ARGS}) ORDER BY spend_rank",
    "daily_by_gpu": f"SELECT * FROM report_cost_by_gpu_day({_WINDOW_ARGS}) ORDER BY day, gpu_name",
    "instances": f"SELECT * FROM report_cost_by_contract({_WINDOW_ARGS}) ORDER BY spend_rank",
    "labels": f"SELECT * FROM report_cost_by_label({_WINDOW_ARGS}) ORDER BY spend_rank",
    "price_changes": f"""
        SELECT changed_at, instance_id, label, gpu_name, is_bid, dph_total_before,
               dph_total_after, change_pct
        FROM price_changes
        WHERE changed_at >= $t0 AND changed_at < $t1 AND {ACCOUNT_FILTER}
        ORDER BY changed_at, instance_id""",
    # -- the bill against the estimate, on the account-days that have a bill
    "recon": f"SELECT * FROM report_reconciliation_summary({_WINDOW_ARGS})",
    "recon_daily": f"SELECT * FROM report_reconciliation_by_day({_WINDOW_ARGS}) ORDER BY day",
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
    metrics = _metrics(q["summary"][0], q["recon"][0], window)
    return Report(
        kind="cost", title="GPU cost report", window=window, account=account,
        generated_at=generated_at, metrics=metrics,
        sections=_sections(q, window) + market_sections(con, window, account),
        notes=_notes(q["summary"][0]), summary=_summary(q, window),
    )


def _notes(s: dict[str, Any]) -> list[str]:
    if not s["billed_days"]:
        return [BANDWIDTH_NOTE, NO_BILLS_NOTE if not s["bills_stored_days"] else
                "No bill is stored for the days of this window yet; figures are estimates."]
    return [BILLED_NOTE] + ([] if s["bills_all_final"] else [NOT_FINAL_NOTE])


def spend_phrase(s: dict[str, Any]) -> str:
    """'billed $10,934.12 to 2026-11-30 + estimated $412.50 since' (or only one part),
    from a `report_cost_summary` row."""
    if not s["billed_days"]:
        return "estimated from snapshots"
    billed = f"billed {fmt(s['billed_cost'], 'usd')} to {s['billed_through']}"
    if not s["estimated_cost"]:
        return billed
    since = s["estimated_from"] > s["billed_through"]
    return (f"{billed} + estimated {fmt(s['estimated_cost'], 'usd')} "
            + ("since" if since else "for the days not billed yet"))


def _summary(q: dict[str, list[dict]], window: Window) -> str:
    """One sentence a team lead reads first: total, where it went, waste, where it heads."""
    s = q["summary"][0]
    parts = [f"Spent {fmt(s['spend_total'], 'usd')} over {s['window_days']} days "
             f"({fmt(s['spend_per_day'], 'usd')}/day: {spend_phrase(s)}"
             + (f", bandwidth {fmt(s['bandwidth_cost'], 'usd')})" if s["billed_days"]
                else "; bills not fetched yet, run `vast-pipeline charges`)")]
    top_gpu = q["by_gpu"][0] if q["by_gpu"] else None
    if top_gpu and top_gpu["share_of_spend"]:
        parts.append(f"{fmt(top_gpu['share_of_spend'], 'share')} of it on {top_gpu['gpu_name']}")
    if q["labels"]:
        top = q["labels"][0]
        parts.append(f"top label {top['label']} ({fmt(top['total_cost'], 'usd')})")
    text = (", ".join(parts) + f". Idle spend {fmt(s['idle_cost'], 'usd')} "
            f"({fmt(s['idle_share'], 'pct1')}, estimated). At the current burn rate of "
            f"{fmt(s['burn_rate_per_hour'], 'usd_per_hour')}, "
            f"{window.month_start.strftime('%B')} ends near {fmt(s['projected_month'], 'usd')}")
    if s["runway_days"] is not None:
        text += (f"; {fmt(s['credit_balance'], 'usd')} of credit lasts "
                 f"{fmt(s['runway_days'], 'days')} at that rate")
    return text + "."


def _metrics(s: dict[str, Any], r: dict[str, Any], window: Window) -> list[Metric]:
    """Every figure is a column of report_cost_summary or report_reconciliation_summary."""
    month = window.month_start.strftime("%B %Y")
    burn_as_of = fmt(s["burn_as_of"], "datetime")
    return [
        Metric("window_spend", "Spend in window", s["spend_total"], "usd",
               f"{window.label()} ({s['window_days']} days), every contract: "
               f"{spend_phrase(s)}", headline=True),
        Metric("month_to_date", "Month to date", s["month_to_date"], "usd",
               f"{s['month_from']} to {window.date_to}", headline=True),
        Metric("projected_month", f"Projected {month}", s["projected_month"], "usd",
               f"month to date + {fmt(s['burn_rate_per_hour'], 'usd_per_hour')} now "
               f"× {s['hours_left_in_month']:,.0f} h left", headline=True),
        Metric("cost_per_gpu_hour", "Average per GPU-hour", s["cost_per_gpu_hour"],
               "usd_per_gpu_hour",
               f"instances' {fmt(s['instance_cost'], 'usd')} / "
               f"{s['gpu_hours']:,.0f} GPU-hours (hours × GPUs)", headline=True),
        Metric("idle_spend", "Idle spend", s["idle_cost"], "usd",
               f"{fmt(s['idle_share'], 'pct1')} of spend, estimated: stopped storage + idle GPUs",
               headline=True),
        Metric("burn_rate_per_hour", "Burn rate now", s["burn_rate_per_hour"], "usd_per_hour",
               f"{fmt(s['burn_per_day'], 'usd')}/day, {fmt(s['burn_per_month'], 'usd')}/month "
               f"(730 h), estimated at {burn_as_of}", headline=True),
        Metric("credit_balance", "Credit left", s["credit_balance"], "usd",
               f"as of {burn_as_of}", headline=True),
        Metric("runway_days", "Credit runway", s["runway_days"], "days",
               f"at the burn rate now (shortest: {s['runway_account']})"
               if s["runway_days"] is not None else "no burn, or no balance reported",
               headline=True),
        Metric("gpu_cost", "GPU cost", s["gpu_cost"], "usd",
               f"{fmt(s['gpu_share'], 'pct1')} of spend"),
        Metric("storage_cost", "Storage cost", s["storage_cost"], "usd"),
        Metric("bandwidth_cost", "Bandwidth cost", s["bandwidth_cost"], "usd",
               "billed days only (snapshots cannot estimate it)"),
        Metric("other_cost", "Other billed charges", s["other_cost"], "usd"),
        Metric("billed_cost", "Billed", s["billed_cost"], "usd",
               f"{s['billed_days']} days with a stored bill, every contract"
               + (f", to {s['billed_through']}" if s["billed_through"] else "")),
        Metric("estimated_cost", "Estimated (not billed yet)", s["estimated_cost"], "usd",
               "from snapshots, instances only"),
        Metric("estimate_gap", "Estimate below the bill", r["estimate_gap"], "pct",
               "instances, on the billed days that have snapshots: "
               "(billed - estimated) / billed"),
        Metric("gpu_hours", "GPU-hours", s["gpu_hours"], "hours", "hours × GPU count"),
        Metric("instance_hours", "Instance hours", s["instance_hours"], "hours",
               "hours with the GPU billed, not × GPU count"),
        Metric("instances", "Instances with spend", s["instances"], "count",
               f"of {s['contracts']} contracts"),
        Metric("idle_stopped_storage", "Storage of stopped instances",
               s["idle_stopped_storage_cost"], "usd"),
        Metric("idle_gpu", "GPUs billed while idle", s["idle_gpu_cost"], "usd"),
        Metric("burn_per_day", "Burn rate now, per day", s["burn_per_day"], "usd"),
        Metric("burn_per_month", "Burn rate now, per month (x730)", s["burn_per_month"], "usd"),
    ]


def _top(rows: list[dict], n: int, total_key: str, noun: str) -> str:
    """'top 10 of 42 instances' (or 'all 7 instances'), from a mart's row count column."""
    total = rows[0][total_key] if rows else 0
    return f"all {total} {noun}" if total <= n else f"top {n} of {total} {noun}"


def _sections(q: dict[str, list[dict]], window: Window) -> list[Section]:
    s = q["summary"][0]
    split = {"GPU": s["gpu_cost"], "Storage": s["storage_cost"]}
    split.update({k: s[key] for k, key in (("Bandwidth", "bandwidth_cost"),
                                           ("Other", "other_cost")) if s[key]})
    days = window.days
    instances, labels = q["instances"], q["labels"]
    scope = f"{window.label()}, UTC days; {spend_phrase(s)}."
    return [
        Section("Daily spend by GPU model",
                text=f"US dollars per UTC day, every contract (volumes under their own name). "
                     f"{scope}",
                chart=lambda: charts().stacked_daily(days, q["daily_by_gpu"], "gpu_name",
                                                   "total_cost"),
                table=_daily_table(q["daily"]), collapsed=True),
        Section("GPU vs storage" if len(split) == 2 else "GPU, storage and bandwidth",
                text=", ".join(f"{k} {fmt(v, 'usd')}" for k, v in split.items())
                     + f" ({window.label()}).",
                chart=lambda: charts().split_donut(split), wide=False),
        Section("Idle spend by day",
                text="Estimated from snapshots, US dollars per UTC day: storage paid while an "
                     "instance is stopped, and GPUs billed while their utilisation stays "
                     "under 5%.",
                chart=lambda: charts().stacked_columns(days, q["daily"], {
                    "idle_stopped_storage_cost": "Stopped storage",
                    "idle_gpu_cost": "Idle GPU"}),
                wide=False),
        Section("Top instances by spend",
                text=f"{_top(instances, TOP_CHART, 'contracts', 'contracts')} with spend, "
                     f"US dollars over {window.label()}.",
                chart=lambda: charts().top_bars(
                    [(_instance_name(r), r["total_cost"]) for r in instances[:TOP_CHART]]),
                wide=False),
        Section("Top labels by spend",
                text=f"{_top(labels, TOP_CHART, 'labels', 'labels')}, US dollars over "
                     f"{window.label()}.",
                chart=lambda: charts().top_bars([(r["label"], r["total_cost"])
                                               for r in labels[:TOP_CHART]]),
                wide=False),
        Section("Spend per contract",
                text=f"Every contract with spend in {window.label()} ({len(instances)}): "
                     "instances, and volumes or other contracts where billed. Source says "
                     "whether its days were billed or estimated.",
                table=_instances_table(instances)),
        Section("Spend per label", text=f"Every label ({len(labels)}), {window.label()}.",
                table=_labels_table(labels), collapsed=True),
        *_reconciliation_sections(q, days, s),
        Section("Price changes in the window",
                text="Changes of an instance's total hourly price (bid instances follow the "
                     "market).",
                table=_price_table(q["price_changes"])),
    ]


def _reconciliation_sections(q: dict[str, list[dict]], days: list,
                             s: dict[str, Any]) -> list[Section]:
    """Bill vs estimate per day, the largest differences and the instances only billed."""
    r = q["recon"][0]
    if not q["recon_daily"]:
        return []
    text = ("Instance contracts only, on the billed days: volumes and other contracts have "
            "no estimate to compare"
            + (f" (they were billed {fmt(r['other_contracts_billed_cost'], 'usd')}, so the "
               f"window's billed total is {fmt(s['billed_cost'], 'usd')})"
               if r["other_contracts_billed_cost"] else "") + ". ")
    if r["billed_cost"]:
        text += (f"The bill is {fmt(r['billed_cost'], 'usd')} and the estimate from snapshots "
                 f"{fmt(r['estimated_cost'], 'usd')}: {fmt(r['difference'], 'usd')} "
                 f"({fmt(r['difference_share'], 'pct')} of the bill)")
    text += (f", of which bandwidth {fmt(r['bandwidth_cost'], 'usd')} and instances only in the "
             f"bill {fmt(r['billed_only_cost'], 'usd')}. {r['matched_rows']} instance-days "
             f"match, {r['differs_rows']} differ, {r['billed_only_rows']} are only in the bill, "
             f"{r['estimated_only_rows']} only in the estimate.")
    shown = r["differs_rows"] + r["estimated_only_rows"]
    return [
        Section("Billed vs estimated", text=text,
                chart=lambda: charts().paired_daily(days, q["recon_daily"], {
                    "billed_cost": "Billed", "estimated_cost": "Estimated"}),
                table=_recon_daily_table(q["recon_daily"])),
        Section("Largest differences between bill and estimate",
                text=f"{'All' if shown <= TOP_DIFFERENCES else f'The {TOP_DIFFERENCES} largest of'}"
                     f" {shown} instance-days that differ or are only estimated, with the "
                     "likely reason (see the cost_reconciliation model).",
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
    shaped = [{**r, "gpu": (f"{r['num_gpus'] or '?'}x {r['gpu_name'] or 'unknown'}"
                            if r["contract_type"] == "instance" else r["gpu_name"]),
               "pricing": ("bid" if r["is_bid"] else "on-demand")
               if r["contract_type"] == "instance" else r["contract_type"]} for r in rows]
    return Table("instances", (
        Column("label", "Label"), Column("instance_id", "Instance"), Column("gpu", "GPU"),
        Column("pricing", "Pricing"), Column("instance_hours", "Instance hours", "hours"),
        Column("gpu_hours", "GPU-hours", "hours"), Column("gpu_cost", "GPU", "usd"),
        Column("storage_cost", "Storage", "usd"), Column("bandwidth_cost", "Bandwidth", "usd"),
        Column("total_cost", "Cost", "usd"), Column("idle_cost", "Idle", "usd"),
        Column("cost_per_gpu_hour", "$/GPU-hour", "usd_per_gpu_hour"),
        Column("cost_source", "Source"),
    ), shaped)


def _labels_table(rows: list[dict]) -> Table:
    return Table("labels", (
        Column("label", "Label"), Column("contracts", "Contracts", "count"),
        Column("gpu_hours", "GPU-hours", "hours"), Column("total_cost", "Cost", "usd"),
        Column("share_of_spend", "Share", "pct"),
    ), rows)


def _price_table(rows: list[dict]) -> Table:
    return Table("price_changes", (
        Column("changed_at", "When (UTC)", "datetime"), Column("instance_id", "Instance"),
        Column("label", "Label"), Column("gpu_name", "GPU"),
        Column("dph_total_before", "Before", "usd_per_hour"),
        Column("dph_total_after", "After", "usd_per_hour"),
        Column("change_pct", "Change", "percent"),
    ), rows, empty_text="No price changes in this window.")
