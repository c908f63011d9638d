"""The commands that bring data in: `demo`, `collect`, `charges`, `market`, `rebuild`
(raw zone -> Parquet again) and `simulator` (the embedded API on its own)."""

from __future__ import annotations

import argparse
import errno
from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports the heavy modules lazily, for a quick start
    from pipeline.storage.store import Store

from pipeline.cli.common import _checked_settings, _read_settings, _today


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
