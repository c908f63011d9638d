"""What a report is, independent of its format.

A report is headline metrics, then sections (a chart, a table, a note). HTML, Markdown and
CSV are three renderings of the same object, so they cannot disagree on a number; the
formatting rules live here so the browser test and the Markdown test can format the
warehouse's value the same way the page does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from types import ModuleType
from typing import Any

from pipeline.reports.window import Window


@dataclass(frozen=True)
class Metric:
    """A number with its meaning; `headline` ones are shown first, all go to the summary."""

    key: str
    label: str
    value: float | None
    unit: str
    detail: str = ""
    headline: bool = False


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    unit: str = "text"


@dataclass(frozen=True)
class Table:
    """Rows are dicts keyed by column key; `key` names the CSV file."""

    key: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    empty_text: str = "None in this window."


@dataclass(frozen=True)
class Section:
    """A chart is drawn lazily (only HTML needs it: Markdown and CSV skip matplotlib)."""

    title: str
    text: str = ""
    chart: Callable[[], str] | None = None
    table: Table | None = None
    wide: bool = True
    collapsed: bool = False


@dataclass(frozen=True)
class Report:
    kind: str
    title: str
    window: Window
    account: str | None
    generated_at: datetime
    metrics: list[Metric]
    sections: list[Section]
    notes: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def headlines(self) -> list[Metric]:
        return [m for m in self.metrics if m.headline]

    @property
    def tables(self) -> list[Table]:
        return [s.table for s in self.sections if s.table is not None]

    def metric(self, key: str) -> Metric:
        return next(m for m in self.metrics if m.key == key)


def charts() -> ModuleType:
    """The chart module, imported on first use: Markdown and CSV never pay for matplotlib."""
    from pipeline.reports import charts as module

    return module


def fmt(value: Any, unit: str) -> str:
    """Display text of a value (the same in HTML and Markdown); `unit` is one of the names
    tested below, anything else (e.g. "text") is shown as is."""
    if value is None:
        return "—"
    if unit == "usd":
        return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"
    if unit == "usd_per_hour":
        return f"${value:,.3f}/h"
    if unit == "usd_per_gpu_hour":
        return f"${value:,.3f}"
    if unit == "pct":
        return f"{100 * value:.2f}%"
    if unit == "pct1":
        return f"{100 * value:.1f}%"
    if unit == "share":
        return f"{100 * value:.0f}%"
    if unit == "days":
        return f"{value:,.1f} days"
    if unit == "percent":
        return f"{value:+.1f}%"
    if unit == "hours":
        return f"{value:,.1f} h"
    if unit == "minutes":
        return f"{60 * value:,.0f} min"
    if unit == "count":
        return f"{int(value):,}"
    if unit == "ratio":
        return f"{value:.3f}"
    if unit == "datetime":
        return value.strftime("%Y-%m-%d %H:%M")
    if unit == "date":
        return value.isoformat()
    return str(value)


def raw(value: Any) -> str:
    """Machine-readable text of a value: CSV cells and `data-value` attributes."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)
