"""Error types whose message is the one sentence a user sees.

Every error meant for a user derives from `PipelineError`; the CLI prints its message
(no traceback unless --debug) and exits with the error's `exit_code`: 2 for what the user
must correct (an argument, a value in the environment or the config file, an unknown
account, a key the API refuses, the SQL of a query), 1 for what failed at run time (the
API, the network, the data). A message says what is wrong and what to do, and never
contains a secret (API key, jupyter token, extra_env value).
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of all errors whose `str()` is fit to show a user as is."""

    exit_code = 1


class ConfigError(PipelineError):
    """The configuration (environment, config file, command-line argument) is invalid."""

    exit_code = 2


class VastApiError(PipelineError):
    """Talking to the Vast.ai API (or the simulator) failed."""


class AuthError(VastApiError):
    """The API key was refused (404 auth_error) or missing (403): the user corrects the
    key, as any other value of the environment (retrying cannot help)."""

    exit_code = 2


class EndpointRetiredError(VastApiError):
    """The endpoint answered 410: it has been retired for this account."""


class RetriesExhaustedError(VastApiError):
    """Transient failures (429, 5xx, timeouts, connection errors) outlasted the retry budget."""


class ApiUnreachableError(RetriesExhaustedError):
    """No connection could be made at all (dead URL, DNS failure, refused connection)."""


class BadResponseError(VastApiError):
    """The body was not the JSON we expect (truncated, HTML error page, missing keys)."""


class BadTokenError(VastApiError):
    """The server refused a pagination cursor (400 invalid_token)."""


class DataError(PipelineError):
    """Stored history is missing or unusable (no snapshots, bad partition, bad raw file)."""


class WarehouseError(PipelineError):
    """Building or querying the DuckDB warehouse failed (bad SQL, unknown table, locked file)."""


class QueryError(WarehouseError, ConfigError):
    """The SQL a user gave cannot run as written (it does not parse, names an unknown table
    or column, or is not a read): theirs to correct, exit 2."""


class ReportError(PipelineError):
    """A report or export cannot be produced (bad window, empty window, no warehouse)."""


class ReportArgumentError(ReportError, ConfigError):
    """A report's or export's argument (a day, the window, a format, the output file) is
    wrong: the user corrects it, exit 2."""


class NoDataYetError(ReportError):
    """The warehouse holds nothing this report is built from yet (a fresh deployment, or
    bills before the first snapshot): a data condition, not the user's mistake."""

    exit_code = 1


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, without a final period (DuckDB puts hints and
    context on later lines), for embedding in a one-sentence message."""
    lines = str(exc).strip().splitlines()
    return lines[0].strip().rstrip(".") if lines else type(exc).__name__
