"""The `vast-pipeline` command.

Each subcommand is a thin wrapper over a library function. Errors meant for users
(`PipelineError`) become one sentence on stderr and a non-zero exit; `--debug` shows the
traceback. Heavy modules (Dagster, DuckDB, matplotlib) are imported inside the commands that
need them, so `vast-pipeline --help` stays instant.

The commands live by what they do: `collection` (demo, collect, charges, market, rebuild,
simulator), `warehouse` (build, sql, report, export), `operations` (status, alerts,
metrics), with what they share in `common`; this module parses and dispatches.
"""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from pipeline.cli.collection import (
    _add_charges,
    _add_collect,
    _add_demo,
    _add_market,
    _add_rebuild,
    _add_simulator,
    _run_collect,
)
from pipeline.cli.operations import _add_alerts, _add_metrics, _add_status
from pipeline.cli.warehouse import _add_build, _add_export, _add_report, _add_sql
from pipeline.core.errors import PipelineError

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
