"""Cost and reliability reports over the warehouse (HTML with charts, Markdown, CSV).

`write_report` is what the CLI (`vast-pipeline report`) and the Dagster report assets
call; `parse_window` and `month_to_date_window` give every caller the same window rules.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from pipeline.errors import ReportError
from pipeline.reports import cost, reliability, render
from pipeline.reports.model import Report
from pipeline.reports.source import open_warehouse
from pipeline.reports.window import Window, month_to_date_window, parse_window

__all__ = ["build_report", "month_to_date_window", "parse_window", "write_report"]

KINDS = {"cost": cost.build, "reliability": reliability.build}
FORMATS = ("html", "md", "csv")


def build_report(home: Path | str, kind: Literal["cost", "reliability"], *, date_from: date,
                 date_to: date, account: str | None = None,
                 now: datetime | None = None) -> Report:
    """The report as data (every figure queried), before any rendering."""
    if kind not in KINDS:
        raise ReportError(f"Unknown report {kind!r}; choose cost or reliability.")
    if date_from > date_to:
        raise ReportError(
            f"--from {date_from} is after --to {date_to}; give the earlier day first."
        )
    window = Window(date_from, date_to)
    with open_warehouse(home) as con:
        return KINDS[kind](con, window, account, now or datetime.now(UTC))


def write_report(home: Path | str, kind: Literal["cost", "reliability"], *, date_from: date,
                 date_to: date, account: str | None = None,
                 fmt: Literal["html", "md", "csv"] = "html", out_dir: Path,
                 now: datetime | None = None) -> list[Path]:
    """Write one report; returns the files written (csv: a summary plus one file per table).

    Names are predictable: `cost_2026-11-19_2026-11-25.html`, `..._summary.csv`,
    `..._instances.csv`, with `_<account>` appended when one account is selected.
    """
    if fmt not in FORMATS:
        raise ReportError(f"Unknown format {fmt!r}; choose html, md or csv.")
    report = build_report(home, kind, date_from=date_from, date_to=date_to, account=account,
                          now=now)
    # Charts are drawn here, after the warehouse is closed (matplotlib is the slow part).
    return render.write(report, fmt, Path(out_dir))
