"""The cost report's Market sections: what the fleet paid against the market, and which
instances could run cheaper on an offer of the newest market snapshot.

Every figure is a column of a warehouse model: `report_market_by_gpu` (paid per GPU-hour
against the market's p25, median and p75 over the window, the share of GPU-hours paid above
the median), `report_market_savings` (the savings advice with its rank, count and monthly
total) and `market_history` (how much market history there is, and the `[market]`
thresholds the advice applied). This module only words, sorts and cuts them. With no market
snapshot at all the section says so and shows nothing else: no figure is made up.
"""

from __future__ import annotations

from typing import Any

import duckdb

from pipeline.reports.model import Column, Section, Table, charts, fmt
from pipeline.reports.source import fetch, window_params
from pipeline.reports.window import Window

TOP_SAVINGS = 10
_WINDOW_ARGS = "$d0, $d1, account_name := $account::VARCHAR"

QUERIES: dict[str, str] = {
    "history": "SELECT * FROM market_history",
    "by_gpu": f"SELECT * FROM report_market_by_gpu({_WINDOW_ARGS}) ORDER BY market_rank",
    "savings": f"SELECT * FROM report_market_savings({_WINDOW_ARGS}) ORDER BY savings_rank",
}

NO_MARKET = ("No market snapshot is stored yet, so there is nothing to compare with: "
             "`vast-pipeline market` takes one (the Dagster `market_schedule` takes them "
             "hourly once switched on).")
CAVEATS = ("Moving means a new instance on another machine: data on the old machine's disk "
           "does not move with it, and an offer may be gone by the time you look. Savings are "
           "hourly differences × 730 hours, at the instance's own disk size; they are what the "
           "market asked, not a promise.")


def market_sections(con: duckdb.DuckDBPyConnection, window: Window,
                    account: str | None) -> list[Section]:
    """The Market sections of the cost report over `window` (and `account`)."""
    params = window_params(window, account)
    q = {name: fetch(con, sql, params) for name, sql in QUERIES.items()}
    if not q["history"]:
        return [Section("Market", text=NO_MARKET)]
    history = q["history"][0]
    return [_paid_section(q["by_gpu"], window), _savings_section(q["savings"], history)]


def _paid_section(rows: list[dict[str, Any]], window: Window) -> Section:
    if not rows:
        return Section("Market", text=f"No market snapshot in {window.label()} for a GPU "
                                      "model the fleet rented then.")
    text = (f"Per GPU model the fleet rented in {window.label()}: what it paid per GPU-hour "
            "(dph_base / GPUs, weighted by the hours the GPU was billed) against the market's "
            "p25, median and p75 per GPU-hour over the window's market snapshots, every offer "
            "verified or not (on-demand: dph_base / GPUs; interruptible instances against the "
            "bid market: min_bid / GPUs). "
            + "; ".join(f"{_gpu(r)}: {fmt(r['share_above_median'], 'share')} of "
                        f"{fmt(r['gpu_hours'], 'hours')} paid above the median"
                        for r in rows) + ".")
    return Section("Market", text=text,
                   chart=lambda: charts().market_ranges(
                       [(_gpu(r), r["market_p25_per_gpu_hour"], r["market_median_per_gpu_hour"],
                         r["market_p75_per_gpu_hour"], r["paid_per_gpu_hour"]) for r in rows]),
                   table=Table("market_by_gpu", (
                       Column("gpu", "GPU model"), Column("offer_type", "Market"),
                       Column("gpu_hours", "GPU-hours", "hours"),
                       Column("paid_per_gpu_hour", "Paid $/GPU-h", "usd_per_gpu_hour"),
                       Column("market_p25_per_gpu_hour", "Market p25", "usd_per_gpu_hour"),
                       Column("market_median_per_gpu_hour", "Median", "usd_per_gpu_hour"),
                       Column("market_p75_per_gpu_hour", "p75", "usd_per_gpu_hour"),
                       Column("premium_pct", "Vs median", "percent"),
                       Column("share_above_median", "GPU-hours above median", "share"),
                       Column("market_snapshots", "Snapshots", "count"),
                   ), [{**r, "gpu": r["gpu_name"]} for r in rows]))


def _savings_section(rows: list[dict[str, Any]], history: dict[str, Any]) -> Section:
    title = "Cheaper offers on the market now"
    if not history["has_lookback"]:
        return Section(title, text=(
            f"Not enough market history yet ({history['span_hours']:,.0f} h of the "
            f"{history['lookback_hours']:,.0f} h lookback): an offer is advice only once it "
            "has been seen over the whole lookback, so none is shown yet."))
    rule = (f"An offer counts when it is on-demand, verified, on another machine, with at least "
            f"the instance's host reliability and disk, and was offered at no more than its "
            f"price now in at least {fmt(history['min_seen_share'], 'share')} of the "
            f"{history['lookback_snapshots']} market snapshots of the last "
            f"{history['lookback_hours']:,.0f} h; a saving is shown above "
            f"{fmt(history['min_monthly_savings'], 'usd')}/month and "
            f"{history['min_savings_pct']:g}%.")
    if not rows:
        text = f"No running instance could save on an offer of the newest market snapshot. {rule}"
    else:
        first = rows[0]
        shown = (f"all {first['opportunities']}" if first["opportunities"] <= TOP_SAVINGS
                 else f"the top {TOP_SAVINGS} of {first['opportunities']}")
        noun = "instance" if first["opportunities"] == 1 else "instances"
        text = (f"{first['opportunities']} running {noun} could save "
                f"{fmt(first['total_monthly_savings'], 'usd')}/month in all ({shown} below). "
                "The total counts each instance's best offer on its own: one offer may be the "
                "best for several instances (Instances on offer), and it can be rented only "
                f"once. {rule} {CAVEATS}")
    return Section(title, text=text, table=Table("market_savings", (
        Column("instance", "Instance"), Column("label", "Label"), Column("gpu", "GPU"),
        Column("current_per_hour", "Now", "usd_per_hour"),
        Column("offer_per_hour", "Offer", "usd_per_hour"),
        Column("monthly_savings", "Saving/month", "usd"),
        Column("savings_pct", "Saving %", "percent"),
        Column("offer_machine_id", "Machine"), Column("offer_host_id", "Host"),
        Column("offer_reliability", "Reliability", "ratio"),
        Column("offer_geolocation", "Location"),
        Column("seen_share", "Seen", "share"),
        Column("instances_on_offer", "Instances on offer", "count"),
    ), [{**r, "instance": f"{r['account']}/{r['instance_id']}",
         "gpu": f"{r['num_gpus']}x {r['gpu_name']}"} for r in rows[:TOP_SAVINGS]],
        empty_text="No saving above the thresholds."))


def _gpu(row: dict[str, Any]) -> str:
    return f"{row['gpu_name']} ({row['offer_type']})"
