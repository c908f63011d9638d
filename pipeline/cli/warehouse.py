"""The commands over the warehouse: `build`, `sql`, `report` and `export` (FOCUS)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports the heavy modules lazily, for a quick start
    pass

from pipeline.cli.common import _read_settings, _today


def _add_build(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("build", help="build the DuckDB warehouse models from sql/")
    p.add_argument("--full", action="store_true", help="rebuild every day, not only new ones")
    p.set_defaults(handler=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    from pipeline.core.progress import progress_bar
    from pipeline.startup import load_settings
    from pipeline.warehouse.build import build_for

    settings = load_settings()
    with progress_bar(None, "building warehouse") as bar:
        result = build_for(settings, full=args.full, progress=bar)
    print(result.summary())
    from pipeline.alerts.hooks import after_build

    after_build(settings)
    return 0


def _add_sql(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("sql", help="run a read-only query against the warehouse")
    p.add_argument("query", help='e.g. "select * from estimated_cost_daily limit 5"; several '
                   "statements (separated by ;) show each result in turn, as tables")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default), csv or json (one statement)")
    p.set_defaults(handler=_run_sql)


def _run_sql(args: argparse.Namespace) -> int:
    """Each statement's result in turn, headed by its statement when there are several;
    csv and json are one document each, so they take a single statement."""
    from pipeline.startup import load_settings
    from pipeline.warehouse.query import format_result, query_each, statement_heading

    single = None if args.format == "table" else (
        f"--format {args.format} prints one result and the query holds several statements: "
        "give one statement, or use --format table to see each result in turn.")
    for result in query_each(load_settings().home, args.query, single_result=single):
        if result.count > 1:
            print(statement_heading(result.sql))  # results end in a blank line already
        print(format_result(result, args.format), flush=True)
    return 0


def _add_report(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("report", help="write a cost or reliability report")
    p.add_argument("kind", choices=("cost", "reliability"))
    p.add_argument("--from", dest="date_from", help="first UTC day (default: 7 days ago)")
    p.add_argument("--to", dest="date_to", help="last UTC day, inclusive (default: today)")
    p.add_argument("--account", help="only this account")
    p.add_argument("--format", choices=("html", "md", "csv"), action="append",
                   help="html (default), md or csv; repeat for several")
    p.add_argument("--out", help="output folder (default $VAST_PIPELINE_HOME/reports, or the "
                   "local cache of an s3:// home)")
    p.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from pipeline.core import clock
    from pipeline.reports import parse_window, write_reports
    from pipeline.storage.datasets import dataset
    from pipeline.storage.local import local_dir

    now = clock.now()  # once: the default window and the report's "generated" moment
    date_from, date_to = parse_window(args.date_from, args.date_to, today=now.date())
    settings = _read_settings(args.account)
    out_dir = Path(args.out) if args.out else local_dir(settings.home) / dataset("reports").folder
    paths = write_reports(settings.home, args.kind, date_from=date_from, date_to=date_to,
                          account=args.account, formats=args.format or ["html"],
                          out_dir=out_dir, now=now)
    for path in paths:
        print(path)
    return 0


def _add_export(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "export", help="export costs as FinOps FOCUS 1.2 (billed where billed, else estimated)")
    p.add_argument("what", choices=("focus",))
    p.add_argument("--from", dest="date_from", help="first UTC day (default: 7 days ago)")
    p.add_argument("--to", dest="date_to", help="last UTC day, inclusive (default: today)")
    p.add_argument("--account", help="only this account")
    p.add_argument("--out", required=True, help="FILE.parquet or FILE.csv")
    p.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from pipeline.reports import parse_window
    from pipeline.reports.focus import export_focus

    date_from, date_to = parse_window(args.date_from, args.date_to, today=_today())
    settings = _read_settings(args.account)
    result = export_focus(settings.home, date_from=date_from, date_to=date_to,
                          out=Path(args.out), account=args.account)
    print(f"{result.path}: {result.rows} FOCUS rows, BilledCost total "
          f"${result.total_billed_cost:,.2f}")
    return 0
