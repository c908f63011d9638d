"""Render a `Report` as one self-contained HTML file, Markdown, or CSV files.

The three formats render the same object: HTML and Markdown show `model.fmt` text (HTML
also carries the exact value in `data-value` attributes), CSV carries the raw values.
Files are written to a temporary name and renamed, so a scheduled run never leaves a
half-written report where someone might open it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path

import jinja2

from pipeline.reports.model import Report, Table, fmt, raw
from pipeline.reports.window import Window
from pipeline.storage.atomic import write_local_atomic

TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                            default_for_string=False),
        undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False,
    )
    env.filters["fmt"] = fmt
    env.filters["raw"] = raw
    env.filters["md"] = _md_cell
    return env


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def file_stem(kind: str, window: Window, account: str | None) -> str:
    """`cost_2026-11-19_2026-11-25` (+ `_<account>`): predictable for schedulers and links."""
    stem = f"{kind}_{window.date_from.isoformat()}_{window.date_to.isoformat()}"
    if account:
        stem += "_" + re.sub(r"[^A-Za-z0-9_.-]+", "-", account)
    return stem


def render_html(report: Report) -> str:
    return _environment().get_template("report.html.j2").render(report=report)


def render_markdown(report: Report) -> str:
    text = _environment().get_template("report.md.j2").render(report=report)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def csv_files(report: Report, stem: str) -> dict[str, str]:
    """File name -> CSV text: a summary of every metric, then one file per table."""
    files = {f"{stem}_summary.csv": _csv(
        ("metric", "label", "value", "unit"),
        ((m.key, m.label, raw(m.value), m.unit) for m in report.metrics))}
    for table in report.tables:
        files[f"{stem}_{table.key}.csv"] = _table_csv(table)
    return files


def _table_csv(table: Table) -> str:
    keys = [c.key for c in table.columns]
    return _csv(keys, ([raw(row.get(k)) for k in keys] for row in table.rows))


def _csv(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_text(path: Path, text: str) -> Path:
    """Atomic write: a reader sees the old file or the new one, never a partial one."""
    return write_local_atomic(path, text)


def write(report: Report, fmt_name: str, out_dir: Path) -> list[Path]:
    stem = file_stem(report.kind, report.window, report.account)
    if fmt_name == "html":
        return [write_text(out_dir / f"{stem}.html", render_html(report))]
    if fmt_name == "md":
        return [write_text(out_dir / f"{stem}.md", render_markdown(report))]
    return [write_text(out_dir / name, text) for name, text in csv_files(report, stem).items()]
