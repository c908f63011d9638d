"""The Dagster instance's own storage failing under a CLI run, as one sentence.

On a production home the run history is in Postgres (deploy/dagster.yaml). If that database
goes away while `vast-pipeline collect` runs, dagster-postgres retries each write a few
times (about 6 s each, with a warning per attempt on the root logger, and Dagster writes
"Exception while writing logger call..." straight to stderr) and the run ends with a
traceback. `instance_storage_errors` turns that into the CLI's one sentence (exit 1, a
run-time failure: run it again once the database is back) and, unless the user asked for
debug output, keeps the retry chatter off the terminal.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stderr

import sqlalchemy.exc

from pipeline.core.errors import PipelineError

# Connection-level trouble of the storage's database, not a bug in a query.
_STORAGE_TROUBLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


class _RootLoggerOnly(logging.Filter):
    """Drops what is logged on the root logger itself (dagster-postgres's retry warnings);
    named loggers' records (the pipeline's own) still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "root" or record.levelno >= logging.ERROR


def storage_cause(exc: BaseException) -> BaseException | None:
    """The database error behind `exc` (its cause chain), if it is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _STORAGE_TROUBLE):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(error: BaseException) -> str:
    """The driver's first line (`connection to server at "host", port N failed: ...`):
    it names the server, never the password."""
    orig = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else type(orig).__name__


@contextmanager
def instance_storage_errors(quiet: bool = True) -> Iterator[None]:
    """Raise a PipelineError (exit 1) when the instance's database fails inside."""
    root = logging.getLogger()
    hush = _RootLoggerOnly()
    if quiet:
        root.addFilter(hush)
    try:
        with redirect_stderr(io.StringIO()) if quiet else nullcontext():
            yield
    except Exception as exc:
        cause = storage_cause(exc)
        if cause is None:
            raise
        error = PipelineError(
            f"The Dagster instance's database failed ({_reason(cause)}); check that it is "
            "up and that $DAGSTER_HOME/dagster.yaml (DAGSTER_PG_* for Postgres) points at "
            "it, then run the command again: a snapshot either landed whole or not at all.")
        raise error from None  # exit 1, PipelineError's: a run-time failure
    finally:
        root.removeFilter(hush)
