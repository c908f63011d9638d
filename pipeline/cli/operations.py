"""The commands that watch a running deployment: `status`, `alerts` and `metrics`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports the heavy modules lazily, for a quick start
    pass



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
