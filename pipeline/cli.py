"""The `vast-pipeline` command.

Each subcommand is a thin wrapper over a library function. Errors meant for users
(`PipelineError`) become one sentence on stderr and a non-zero exit; `--debug` shows the
traceback. Heavy modules (Dagster, DuckDB, matplotlib) are imported inside the commands that
need them, so `vast-pipeline --help` stays instant.
"""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.errors import PipelineError

if TYPE_CHECKING:  # the CLI imports the heavy modules lazily, for a quick start
    from pipeline.core.config import Settings
    from pipeline.storage.store import Store

Handler = Callable[[argparse.Namespace], int]

# OSErrors that mean a path the user gave (an argument, the home) is wrong: exit 2, as every
# mistake the user corrects; any other (no space left, an I/O error) failed at run time.
PATH_MISTAKES = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                           errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status.

    Without `argv` (the console script) the process ends when this returns; see
    `_short_process`.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.debug:  # Dagster's own chatter would bury the one sentence that matters
        logging.getLogger("dagster").setLevel(logging.ERROR)
    with _short_process(argv is None, args.handler):
        return _handle(args)


@contextmanager
def _short_process(ends_process: bool, handler: Handler) -> Iterator[None]:
    """A `collect` from the console is a process of seconds over a large heap (Dagster's
    modules): Python's cyclic garbage collector walking it cost about 0.5 s of a collect,
    and walking it again while tearing the interpreter down 0.8 to 1.2 s more (load 3 to
    4; README, "Benchmarks"). So such a process runs `collect` without the cyclic collector
    (reference counting still frees nearly everything, and the process is gone in
    seconds), and any console command freezes its heap before exiting, so the teardown
    does not walk it. Called in-process (tests, `argv` given), nothing changes."""
    if ends_process and handler is _run_collect:
        gc.disable()
    try:
        yield
    finally:
        if ends_process:
            gc.freeze()


def _handle(args: argparse.Namespace) -> int:
    """Run the command; a user's mistake is one sentence on stderr, not a traceback."""
    try:
        return int(args.handler(args) or 0)
    except PipelineError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a path the user gave: exists, not writable, no space left
        if args.debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; check the path and its permissions.",
              file=sys.stderr)
        return 2 if exc.errno in PATH_MISTAKES else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vast-pipeline",
        description="Keep the history of Vast.ai GPU instances; answer cost and reliability "
                    "questions.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (_add_demo, _add_collect, _add_charges, _add_rebuild, _add_build, _add_sql,
                _add_report, _add_export, _add_simulator, _add_status, _add_alerts,
                _add_metrics, _add_market):
        add(commands)
    return parser


# --- argument helpers -----------------------------------------------------------------


def _today() -> date:
    """The UTC day of the run's one clock (`pipeline.core.clock`), read once per command."""
    from pipeline.core import clock
    return clock.today()


# --- commands ---------------------------------------------------------------------------


def _add_demo(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("demo", help="end-to-end demo on the embedded simulator")
    from pipeline.sim.defaults import DEFAULT_FLEET_SIZE, DEFAULT_SEED

    p.add_argument("--days", type=int, default=7, help="days of history to build (default 7)")
    p.add_argument("--size", type=int, default=DEFAULT_FLEET_SIZE,
                   help=f"instances alive at a time (default {DEFAULT_FLEET_SIZE})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--home", help="data folder (default $VAST_PIPELINE_HOME or ./data)")
    p.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from assets.record import record_demo
    from pipeline.demo import run_demo

    return run_demo(days=args.days, size=args.size, seed=args.seed, home=args.home,
                    record=record_demo)


def _add_collect(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("collect", help="take one snapshot now (through Dagster, in-process)")
    p.add_argument("--account", help="only this account (default: all configured)")
    p.set_defaults(handler=_run_collect)


def _checked_settings(account: str | None, simulator_note: str) -> Settings:
    """Settings checked before any work: a mistyped account name or an unreachable or
    refused object store fails here, in one sentence; says when the simulator is used."""
    from pipeline.startup import load_settings
    from pipeline.storage.store import Store

    settings = load_settings()
    Store(settings.home)
    _check_account(settings, account, fetches=True)
    if settings.uses_simulator:
        print(f"note: VAST_API_KEY is not set, so this {simulator_note}.", file=sys.stderr)
    return settings


def _read_settings(account: str | None) -> Settings:
    """Settings of a command that reads what is stored (rebuild, report, export), with its
    --account checked before any work."""
    from pipeline.startup import load_settings

    settings = load_settings()
    _check_account(settings, account, fetches=False)
    return settings


# What holds an account's history: the raw zones (the source of truth) and the logs landed
# from them; an account in any of them can be rebuilt, reported and exported.
HISTORY_DATASETS = ("raw", "raw_charges", "snapshots", "billed_days")


def _check_account(settings: Settings, account: str | None, *, fetches: bool) -> None:
    """The one rule for --account, in every command that takes it: a name that is neither
    configured nor (for commands reading what is stored) in the history is the user's
    mistake, one sentence naming the known accounts, exit 2. A command that fetches from
    the API (collect, charges) needs the account configured, with its key."""
    from pipeline.core.errors import ConfigError
    from pipeline.storage.store import Store

    configured = [a.name for a in settings.accounts]
    if account is None or account in configured:
        return
    store = Store(settings.home)
    stored = {name for dataset in HISTORY_DATASETS for name in store.accounts(dataset)}
    if account in stored and not fetches:
        return
    if account in stored:
        raise ConfigError(f"Account {account!r} has history in {settings.home} but is not "
                          "configured, so it cannot be fetched: add it to [[accounts]] in "
                          f"the config file (configured: {', '.join(configured)}).")
    known = configured if fetches else sorted({*configured, *stored})
    where = "configured" if fetches else "configured or in the history"
    raise ConfigError(f"No account named {account!r} is {where} (known: {', '.join(known)}).")


def _run_collect(args: argparse.Namespace) -> int:
    settings = _checked_settings(args.account, "collects from the embedded simulator; "
                                 "export VAST_API_KEY to collect your Vast.ai account")
    from assets.inprocess import collect_in_dagster

    for line in collect_in_dagster(settings, account=args.account, verbose=args.debug):
        print(line)
    return 0


def _add_charges(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "charges", help="fetch Vast.ai's bill of each UTC day (replaces what was stored)")
    p.add_argument("--from", dest="date_from", help="first UTC day, YYYY-MM-DD "
                   "(default: two days before --to)")
    p.add_argument("--to", dest="date_to", help="last UTC day, inclusive (default: today)")
    p.add_argument("--account", help="only this account (default: all configured)")
    p.set_defaults(handler=_run_charges)


def _charge_days(date_from: str | None, date_to: str | None, today: date) -> list[date]:
    """The inclusive UTC days of `charges`: default today and the two days before.

    A day after today has no bill yet; the sentence names the flags given, never a default
    the user did not choose."""
    from pipeline.billing import DEFAULT_DAYS_BACK, check_days, day_range
    from pipeline.core.errors import ConfigError
    from pipeline.reports.window import check_order, parse_day

    last = parse_day(date_to, "--to") if date_to else None
    first = parse_day(date_from, "--from") if date_from else None
    future = [f"{flag} {day}" for flag, day in (("--from", first), ("--to", last))
              if day is not None and day > today]
    if future:
        raise ConfigError(f"{' and '.join(future)} {'is' if len(future) == 1 else 'are'} in "
                          f"the future (today is {today} UTC): bills exist only for days that "
                          f"have begun; give days up to {today}.")
    if last is None:
        last = today
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS_BACK - 1)
    check_order(first, last)
    days = day_range(first, last)
    check_days(days, today)
    return days


def _run_charges(args: argparse.Namespace) -> int:
    from pipeline.billing import collect_charges
    from pipeline.core.progress import progress_bar

    today = _today()
    days = _charge_days(args.date_from, args.date_to, today)
    settings = _checked_settings(args.account, "fetches bills from the embedded simulator; "
                                 "export VAST_API_KEY to fetch your Vast.ai account's bills")
    several = args.account is None and len(settings.accounts) > 1
    accounts = 1 if args.account else len(settings.accounts)
    with progress_bar(len(days) * accounts, "fetching bills") as bar:
        def landed(result) -> None:
            prefix = f"{result.account} " if several else ""
            print(f"{prefix}{result.change_line()}", flush=True)
            bar.advance()

        collect_charges(settings, days, args.account, progress=landed, today=today)
    return 0


def _add_rebuild(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("rebuild", help="re-derive all Parquet from the raw zone (no API)")
    p.add_argument("--from", dest="date_from", help="first UTC day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", help="last UTC day, YYYY-MM-DD")
    p.add_argument("--account", help="only this account")
    p.set_defaults(handler=_run_rebuild)


def _run_rebuild(args: argparse.Namespace) -> int:
    from pipeline.billing import raw_bill_days, rebuild_charges
    from pipeline.core.progress import progress_bar
    from pipeline.landing.history import rebuild
    from pipeline.landing.raw import raw_partitions, snapshot_files
    from pipeline.reports.window import check_order, parse_day
    from pipeline.storage.store import Store

    date_from = parse_day(args.date_from, "--from") if args.date_from else None
    date_to = parse_day(args.date_to, "--to") if args.date_to else None
    if date_from and date_to:
        check_order(date_from, date_to)
    settings = _read_settings(args.account)
    store = Store(settings.home)
    accounts = [args.account] if args.account else None
    total = sum(len(snapshot_files(store, account, day))
                for account, day in raw_partitions(store, args.account, date_from, date_to))
    total += len(raw_bill_days(store, accounts, date_from, date_to))
    if not args.account:
        from pipeline.market.raw import raw_days, raw_files

        total += sum(len(raw_files(store, day)) for day in raw_days(store)
                     if (not date_from or day >= date_from) and (not date_to or day <= date_to))
    with progress_bar(total, "rebuilding Parquet from raw") as bar:
        result = rebuild(store, date_from=date_from, date_to=date_to, accounts=accounts,
                         progress=bar)
        bills = rebuild_charges(store, date_from=date_from, date_to=date_to,
                                accounts=accounts, progress=bar)
        market = None if args.account else _rebuild_market(store, date_from, date_to, bar)
    print(result.summary())
    print(bills.summary())
    if market is not None:
        print(market)
    return 0


def _rebuild_market(store: Store, date_from: date | None, date_to: date | None,
                    bar: Callable[[int], None]) -> str:
    """The market's days re-derived from its raw zone (it belongs to no account, so a
    rebuild of one --account leaves it alone); the sentence `rebuild` prints."""
    from pipeline.market.landing import rebuild_market

    days = rebuild_market(store, date_from=date_from, date_to=date_to, progress=bar)
    errors = [e for d in days for e in d.errors]
    text = (f"Rebuilt {len(days)} market days from {sum(d.snapshots for d in days)} raw "
            f"market snapshots ({sum(d.offers for d in days)} offers, "
            f"{sum(d.quarantined_records for d in days)} records and "
            f"{sum(d.quarantined_values for d in days)} values quarantined).")
    if errors:
        text += f" Skipped {len(errors)} unreadable raw market files: " + " ".join(errors)
    return text


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


def _add_simulator(commands: argparse._SubParsersAction) -> None:
    from pipeline.sim import defaults

    p = commands.add_parser("simulator", help="serve the Vast.ai API simulator on 127.0.0.1")
    p.add_argument("--port", type=int, default=defaults.DEFAULT_PORT)
    p.add_argument("--seed", type=int, default=defaults.DEFAULT_SEED)
    p.add_argument("--size", type=int, default=defaults.DEFAULT_FLEET_SIZE,
                   help="instances alive at a time")
    p.add_argument("--min-interval", type=float, default=defaults.SERVE_MIN_INTERVAL,
                   help="seconds between calls to one endpoint before 429 "
                        f"(default {defaults.SERVE_MIN_INTERVAL})")
    p.add_argument("--drift-rate", type=float, default=0.0)
    p.set_defaults(handler=_run_simulator)


def _run_simulator(args: argparse.Namespace) -> int:
    """The arguments are checked first (each mistake one sentence, exit 2), and a port
    already taken is named as such, not as a path."""
    from pipeline.core.errors import ConfigError
    from pipeline.sim.simulator import serve

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port; use 1 to 65535 (0: any free one).")
    if not 1 <= args.size <= 5000:
        raise ConfigError(f"--size {args.size} is out of range; use 1 to 5000.")
    if not args.min_interval >= 0:
        raise ConfigError(f"--min-interval {args.min_interval} must be >= 0 seconds.")
    if not 0 <= args.drift_rate <= 1:
        raise ConfigError(f"--drift-rate {args.drift_rate} is out of range; use 0 to 1.")
    try:
        serve(args.port, args.seed, args.size, min_interval=args.min_interval,
              drift_rate=args.drift_rate)
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        raise ConfigError(f"Cannot listen on 127.0.0.1:{args.port} ({exc.strerror}); pick "
                          "another --port, or 0 for any free one.") from None
    return 0


def _add_status(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("status", help="settings, accounts and the newest snapshot")
    p.set_defaults(handler=_run_status)


def _run_status(args: argparse.Namespace) -> int:
    from pipeline.billing import newest_bills
    from pipeline.landing.history import newest_snapshots
    from pipeline.startup import load_settings
    from pipeline.storage.store import Store

    settings = load_settings()
    print(f"home: {settings.home}")
    print(f"config file: {settings.config_file or '(none)'}")
    print(f"cadence: every {settings.cadence_minutes} minutes")
    store = Store(settings.home)
    newest = newest_snapshots(store)
    bills = newest_bills(store)
    for account in settings.accounts:
        where = ("embedded simulator (set VAST_API_KEY to collect your account)"
                 if account.is_simulated else f"{account.url} (key from ${account.key_env})")
        print(f"account {account.name}: {where}")
        if account.name in newest:
            at, instances = newest[account.name]
            print(f"  newest snapshot: {at:%Y-%m-%d %H:%M:%S}Z, {instances} instances")
        else:
            print("  no snapshot yet: run `vast-pipeline collect`")
        if account.name in bills:
            bill = bills[account.name]
            print(f"  newest bill: {bill['day']}, ${bill['total_amount']:,.2f} "
                  f"(fetched {bill['fetched_at']:%Y-%m-%d %H:%M}Z)")
        else:
            print("  no bill yet: run `vast-pipeline charges`")
    from pipeline.market.landing import newest_market_snapshot

    market = newest_market_snapshot(store)
    if market is None:
        print("market: no snapshot yet: run `vast-pipeline market`")
    else:
        print(f"market: newest snapshot {market['snapshot_at']:%Y-%m-%d %H:%M:%S}Z, "
              f"{market['offers']} offers{' (incomplete)' if market['incomplete'] else ''}")
    return 0


def _add_alerts(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("alerts", help="what is firing, recent transitions; `alerts test`")
    p.add_argument("action", nargs="?", choices=("list", "test"), default="list",
                   help="list (default) or test: send a test message to the receivers")
    p.add_argument("--receiver", help="test only this receiver (by name)")
    p.add_argument("--limit", type=int, default=20, help="recent transitions shown")
    p.set_defaults(handler=_run_alerts)


def _run_alerts(args: argparse.Namespace) -> int:
    from pipeline.core.errors import ConfigError
    from pipeline.startup import load_settings

    if args.limit < 0:
        raise ConfigError(f"--limit {args.limit} is negative; give how many transitions to "
                          "show (0 or more).")
    settings = load_settings()
    if args.action == "list":
        from pipeline.alerts.listing import alert_lines

        for line in alert_lines(settings, args.limit):
            print(line)
        return 0
    from pipeline.alerts.hooks import send_test

    refused = 0
    for receiver, tried in send_test(settings, args.receiver):
        if tried.accepted:
            print(f"{receiver.name}: accepted (HTTP {tried.status_code})")
        else:
            refused += 1
            print(f"{receiver.name}: NOT accepted after {tried.attempts} attempt(s): "
                  f"{tried.error}", file=sys.stderr)
    return 1 if refused else 0


def _add_metrics(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("metrics", help="serve the fleet as Prometheus metrics on /metrics")
    p.add_argument("--listen", help="HOST:PORT to serve /metrics on (default 127.0.0.1:9108)")
    p.add_argument("--textfile", metavar="PATH",
                   help="write the metrics once to PATH (atomically, for node_exporter's "
                   "textfile collector) instead of serving them")
    p.set_defaults(handler=_run_metrics)


def _run_metrics(args: argparse.Namespace) -> int:
    """Serve until interrupted, or write the textfile once; read from the warehouse and
    the alert state only (never from Vast.ai)."""
    from pipeline.core.config import load_settings
    from pipeline.metrics import DEFAULT_LISTEN, metrics_server, parse_listen, write_textfile

    listen = args.listen or DEFAULT_LISTEN
    parse_listen(listen)  # a bad --listen is the first thing said
    settings = load_settings()
    if args.textfile:
        print(write_textfile(settings.home, args.textfile))
        return 0
    server = metrics_server(settings.home, listen)
    host, port = server.server_address[:2]
    print(f"serving http://{host}:{port}/metrics (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _add_market(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "market", help="take one market snapshot now (the offer search; no account's data)")
    p.set_defaults(handler=_run_market)


def _run_market(args: argparse.Namespace) -> int:
    """One market snapshot with the first account's key; what it landed, in one line."""
    from pipeline.core import clock
    from pipeline.core.config import load_settings
    from pipeline.core.progress import progress_bar
    from pipeline.market.collect import collect_market, plan_market

    plan_market(load_settings(), clock.now())  # [market] and the GPU models, checked first
    settings = _checked_settings(None, "searches the embedded simulator's market; export "
                                 "VAST_API_KEY to search Vast.ai's")
    with progress_bar(None, "searching the market") as bar:
        result = collect_market(settings, progress=lambda _page: bar.advance())
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
