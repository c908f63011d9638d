"""Cost and reliability reports over the warehouse (HTML with charts, Markdown, CSV).

`write_reports` builds a report once and writes it in several formats (the Dagster report
assets and the demo); `write_report` writes one format (the CLI, `vast-pipeline report`).
`parse_window` and `month_to_date_window` give every caller the same window rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from pipeline.core import clock
from pipeline.core.errors import ReportArgumentError
from pipeline.reports import cost, reliability, render
from pipeline.reports.model import Report
from pipeline.reports.source import open_warehouse
from pipeline.reports.window import Window, month_to_date_window, parse_day, parse_window

__all__ = ["FORMATS", "build_report", "month_to_date_window", "parse_day", "parse_window",
           "write_report", "write_reports"]

KINDS = {"cost": cost.build, "reliability": reliability.build}
FORMATS = ("html", "md", "csv")


def build_report(home: Path | str, kind: Literal["cost", "reliability"], *, date_from: date,
                 date_to: date, account: str | None = None,
                 now: datetime | None = None) -> Report:
    """The report as data (every figure queried), before any rendering. `now` (default
    `pipeline.core.clock.now()`): the moment it is generated at, from the caller's clock."""
    if kind not in KINDS:
        raise ReportArgumentError(f"Unknown report {kind!r}; choose cost or reliability.")
    window = Window(date_from, date_to)  # raises ReportArgumentError if date_from > date_to
    with open_warehouse(home) as con:
        return KINDS[kind](con, window, account, now or clock.now())


def write_reports(home: Path | str, kind: Literal["cost", "reliability"], *, date_from: date,
                  date_to: date, account: str | None = None,
                  formats: Sequence[str] = FORMATS, out_dir: Path,
                  now: datetime | None = None) -> list[Path]:
    """Build the report once and write it in each of `formats` (in order; repeats ignored).

    Returns the files written (csv: a summary plus one file per table). Names are
    predictable: `cost_2026-11-19_2026-11-25.html`, `..._summary.csv`, `..._instances.csv`,
    with `_<account>` appended when one account is selected.
    """
    wanted = [formats] if isinstance(formats, str) else list(dict.fromkeys(formats))
    if not wanted:
        raise ReportArgumentError("No report format given; choose html, md or csv.")
    for name in wanted:
        if name not in FORMATS:
            raise ReportArgumentError(f"Unknown format {name!r}; choose html, md or csv.")
    report = build_report(home, kind, date_from=date_from, date_to=date_to, account=account,
                          now=now)
    # Charts are drawn here, after the warehouse is closed (matplotlib is the slow part).
    return [path for name in wanted for path in render.write(report, name, Path(out_dir))]


def write_report(home: Path | str, kind: Literal["cost", "reliability"], *, date_from: date,
                 date_to: date, account: str | None = None,
                 fmt: Literal["html", "md", "csv"] = "html", out_dir: Path,
                 now: datetime | None = None) -> list[Path]:
    """Write one report in one format; see `write_reports`."""
    return write_reports(home, kind, date_from=date_from, date_to=date_to, account=account,
                         formats=(fmt,), out_dir=out_dir, now=now)
