"""Charts as inline SVG strings, drawn with matplotlib (no network, no JavaScript).

Text stays text (`svg.fonttype = none`) so the charts are small, sharp at any zoom and
searchable; each chart gets its own hash salt so the ids of two charts inlined in one
page never collide. `Figure` is used directly (not pyplot) so nothing global is touched.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import matplotlib
import matplotlib.dates
import matplotlib.patches
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899",
           "#84cc16", "#94a3b8")
INK, MUTED, GRID = "#1f2937", "#6b7280", "#e5e7eb"
MAX_SERIES = 7

_RC = {
    "svg.fonttype": "none",
    "font.family": ["DejaVu Sans", "sans-serif"],
    "font.size": 9,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "axes.titlesize": 10,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
}


def _money(x: float, _pos: Any = None) -> str:
    return f"${x:,.0f}" if abs(x) >= 10 else f"${x:,.2f}"


def _money_axis(ax_axis: Any, top: float) -> None:
    """$ ticks with one number format for the whole axis (no '$8.00' under '$10')."""
    decimals = 0 if top >= 20 else 2
    ax_axis.set_major_locator(MaxNLocator(nbins=5))
    ax_axis.set_major_formatter(FuncFormatter(lambda x, _p: f"${x:,.{decimals}f}"))


def _render(name: str, size: tuple[float, float], draw: Callable[[Figure], None]) -> str:
    """Draw into a fresh figure and return the `<svg>` element (no XML prolog)."""
    with matplotlib.rc_context({**_RC, "svg.hashsalt": f"vast-pipeline-{name}"}):
        fig = Figure(figsize=size, layout="constrained")
        draw(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    svg = text[text.index("<svg"):]
    return svg.replace("<svg ", f'<svg role="img" aria-label="{name} chart" '
                       f'class="chart chart-{name}" ', 1)


def _empty(ax: Any, text: str = "Nothing in this window") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", color=MUTED, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _day_labels(days: Sequence[date]) -> list[str]:
    return [d.strftime("%a\n%d") if len(days) <= 14 else d.strftime("%m-%d") for d in days]


def stacked_daily(days: Sequence[date], rows: list[dict], series_key: str,
                  value_key: str) -> str:
    """Daily totals stacked by a category (GPU model); small categories become 'other'."""
    totals: dict[str, float] = {}
    for r in rows:
        totals[r[series_key]] = totals.get(r[series_key], 0.0) + (r[value_key] or 0.0)
    ranked = sorted(totals, key=lambda k: -totals[k])
    keep = ranked if len(ranked) <= MAX_SERIES + 1 else ranked[:MAX_SERIES]
    values: dict[str, list[float]] = {k: [0.0] * len(days) for k in [*keep, "other"]}
    index = {d: i for i, d in enumerate(days)}
    for r in rows:
        name = r[series_key] if r[series_key] in keep else "other"
        if r["day"] in index:
            values[name][index[r["day"]]] += r[value_key] or 0.0
    if not any(values["other"]):
        del values["other"]
    return _stacked("daily", days, values)


def stacked_columns(days: Sequence[date], rows: list[dict], columns: dict[str, str]) -> str:
    """Daily values of fixed columns (e.g. idle storage vs idle GPU), stacked."""
    index = {d: i for i, d in enumerate(days)}
    values = {label: [0.0] * len(days) for label in columns.values()}
    for r in rows:
        if r["day"] in index:
            for key, label in columns.items():
                values[label][index[r["day"]]] += r[key] or 0.0
    return _stacked("idle", days, values, size=(5.2, 2.8))


def _stacked(name: str, days: Sequence[date], values: dict[str, list[float]],
             size: tuple[float, float] = (10.5, 3.4)) -> str:
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        if not any(any(v) for v in values.values()):
            _empty(ax)
            return
        x = list(range(len(days)))
        bottom = [0.0] * len(days)
        for i, (label, vals) in enumerate(values.items()):
            ax.bar(x, vals, bottom=bottom, color=PALETTE[i % len(PALETTE)], label=label,
                   width=0.7)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_xticks(x, _day_labels(days))
        _money_axis(ax.yaxis, max(bottom))
        ax.grid(axis="y", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _render(name, size, draw)


def split_donut(parts: dict[str, float | None]) -> str:
    """A total split into parts (GPU vs storage), each labelled with $ and share."""
    clean = {k: max(v or 0.0, 0.0) for k, v in parts.items()}
    total = sum(clean.values())

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        if total <= 0:
            _empty(ax)
            return
        labels = [f"{k}  {_money(v)}  ({100 * v / total:.1f}%)" for k, v in clean.items()]
        wedges, _ = ax.pie(list(clean.values()), colors=PALETTE[: len(clean)], startangle=90,
                           counterclock=False, wedgeprops={"width": 0.38, "edgecolor": "white"})
        ax.text(0, 0, _money(total), ha="center", va="center", fontsize=12, color=INK,
                fontweight="bold")
        ax.legend(wedges, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9)
        ax.set_aspect("equal")
    return _render("split", (5.2, 2.8), draw)


def top_bars(items: list[tuple[str, float]]) -> str:
    """Horizontal bars (dollars), largest on top, each with its value written at its end."""
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        if not items:
            _empty(ax)
            return
        names = [_short(n) for n, _ in items][::-1]
        vals = [v or 0.0 for _, v in items][::-1]
        ax.barh(range(len(vals)), vals, color=PALETTE[0], height=0.65)
        ax.set_yticks(range(len(vals)), names, fontsize=8)
        top = max(vals) or 1.0
        for i, v in enumerate(vals):
            ax.text(v + top * 0.01, i, _money(v), va="center", fontsize=8, color=INK)
        ax.set_xlim(0, top * 1.18)
        _money_axis(ax.xaxis, top)
        ax.grid(axis="x", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
    return _render("top", (5.2, 0.5 + 0.26 * max(len(items), 3)), draw)


def availability_bars(name: str, items: list[tuple[str, float | None]]) -> str:
    """Availability per member, worst on top, colored by how many nines it keeps."""
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        shown = [(n, v) for n, v in items if v is not None]
        if not shown:
            _empty(ax, "No running time observed")
            return
        names = [_short(n) for n, _ in shown][::-1]
        vals = [v for _, v in shown][::-1]
        low = max(0.0, min(vals) - (1 - min(vals)) * 0.25 - 0.005)
        ax.barh(range(len(vals)), [v - low for v in vals], left=low,
                color=[_nines_color(v) for v in vals], height=0.65)
        ax.set_yticks(range(len(vals)), names, fontsize=8)
        for i, v in enumerate(vals):
            inside = (v - low) > 0.3 * (1 - low)
            ax.text(v - 0.01 * (1 - low) if inside else v + 0.01 * (1 - low), i,
                    f"{100 * v:.2f}%", va="center", ha="right" if inside else "left",
                    fontsize=8, color="white" if inside else INK)
        ax.set_xlim(low, 1.0)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        if low > 0:  # zoomed in so that 99.5% and 99.9% differ: say so on the axis
            ax.set_xlabel(f"availability (axis starts at {100 * low:.1f}%, not 0)", fontsize=8)
        ax.grid(axis="x", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
    return _render(name, (5.2, 0.5 + 0.26 * max(len(items), 3)), draw)


def incident_timeline(start: datetime, end: datetime, rows: list[dict]) -> str:
    """One lane per instance, one bar per incident clipped to the window, colored by status."""
    lanes = list(dict.fromkeys(r["lane"] for r in rows))
    statuses = list(dict.fromkeys(s for r in rows for s in (r["statuses"] or ["down"])))
    colors = {s: PALETTE[(i + 3) % len(PALETTE)] for i, s in enumerate(statuses)}

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        if not rows:
            _empty(ax, "No incidents in this window")
            return
        for r in rows:
            s = max(r["started_at"], start)
            e = min(r["ended_at"] or end, end)
            width = max((e - s).total_seconds() / 86400.0, 0.004)
            status = (r["statuses"] or ["down"])[0]
            ax.barh(lanes.index(r["lane"]), width, left=matplotlib.dates.date2num(s),
                    color=colors[status], height=0.6)
        ax.set_yticks(range(len(lanes)), [_short(n, 46) for n in lanes], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(matplotlib.dates.date2num(start), matplotlib.dates.date2num(end))
        ax.xaxis.set_major_locator(matplotlib.dates.DayLocator())
        ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%a %d"))
        ax.grid(axis="x", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        handles = [matplotlib.patches.Patch(color=c, label=s) for s, c in colors.items()]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _render("timeline", (10.5, 0.8 + 0.24 * max(len(lanes), 3)), draw)


def reliability_scatter(points: list[tuple[float, float, float]]) -> str:
    """Observed availability (y) against the host's reliability2 (x); size = hours observed."""
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        pts = [p for p in points if p[0] is not None and p[1] is not None]
        if not pts:
            _empty(ax, "No running time observed")
            return
        biggest = max(p[2] for p in pts) or 1.0
        ax.scatter([p[0] for p in pts], [p[1] for p in pts],
                   s=[12 + 60 * p[2] / biggest for p in pts],
                   c=[_nines_color(p[1]) for p in pts], alpha=0.75, edgecolors="white")
        ax.plot([0, 1], [0, 1], color=GRID, linewidth=1, zorder=0)
        lo = min(min(p[0] for p in pts), min(p[1] for p in pts))
        ax.set_xlim(max(0.0, lo - 0.05), 1.01)
        ax.set_ylim(max(0.0, lo - 0.05), 1.01)
        start = max(0.0, lo - 0.05)
        note = f" (axes start at {start:.2f}, not 0)" if start > 0 else ""
        ax.set_xlabel(f"host reliability2 (Vast.ai's score, last in window){note}")
        ax.set_ylabel("observed availability")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
    return _render("scatter", (5.2, 3.4), draw)


def _nines_color(v: float) -> str:
    return "#10b981" if v >= 0.999 else "#f59e0b" if v >= 0.99 else "#ef4444"


def _short(text: str, n: int = 34) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def paired_daily(days: Sequence[date], rows: list[dict], columns: dict[str, str]) -> str:
    """Two values per day side by side (billed vs estimated); days without a row are gaps."""
    index = {d: i for i, d in enumerate(days)}
    values = {label: [0.0] * len(days) for label in columns.values()}
    for r in rows:
        if r["day"] in index:
            for key, label in columns.items():
                values[label][index[r["day"]]] = r[key] or 0.0

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        top = max((v for vals in values.values() for v in vals), default=0.0)
        if top <= 0:
            _empty(ax, "No bill stored for this window")
            return
        width = 0.8 / len(values)
        for i, (label, vals) in enumerate(values.items()):
            x = [k - 0.4 + width * (i + 0.5) for k in range(len(days))]
            ax.bar(x, vals, width=width, color=PALETTE[i % len(PALETTE)], label=label)
        ax.set_xticks(list(range(len(days))), _day_labels(days))
        _money_axis(ax.yaxis, top)
        ax.grid(axis="y", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _render("reconciliation", (10.5, 3.0), draw)


def market_ranges(items: list[tuple[str, float, float, float, float]]) -> str:
    """Per GPU model: the market's p25-p75 as a bar, its median as a tick and what the
    fleet paid as a dot, in $ per GPU-hour (`items`: name, p25, median, p75, paid)."""
    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        if not items:
            _empty(ax, "No market price for this window")
            return
        rows = items[::-1]
        y = list(range(len(rows)))
        ax.barh(y, [p75 - p25 for _, p25, _, p75, _ in rows],
                left=[p25 for _, p25, _, _, _ in rows], height=0.5, color=GRID,
                edgecolor=MUTED, linewidth=0.6, label="market p25-p75")
        ax.scatter([m for _, _, m, _, _ in rows], y, marker="|", s=300, color=INK,
                   linewidths=2, label="market median", zorder=3)
        ax.scatter([paid for *_, paid in rows], y, marker="o", s=40, color=PALETTE[3],
                   label="paid", zorder=4)
        ax.set_yticks(y, [_short(name) for name, *_ in rows], fontsize=8)
        top = max(max(p75, paid) for _, _, _, p75, paid in rows) or 1.0
        ax.set_xlim(0, top * 1.1)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _p: f"${x:,.2f}"))
        ax.set_xlabel("$ per GPU-hour")
        ax.grid(axis="x", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _render("market", (10.5, 0.9 + 0.38 * max(len(items), 2)), draw)
