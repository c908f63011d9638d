"""The ground floor every other package stands on: errors and their exit codes, the
settings file (read into plain data; each layer interprets its own part), the run's clock
and the simulator's time header, retrying with backoff, secrets scrubbing and redaction,
progress bars and where shipped files live. It imports nothing above it.

Modules: `clock`, `config`, `entries`, `errors`, `progress`, `resources`, `retry`, `secrets`,
`simtime`. The names below are what the packages above import; they load on first use, so
importing the package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "Account": "config",
    "ApiUnreachableError": "errors",
    "AuthError": "errors",
    "Backoff": "retry",
    "BadResponseError": "errors",
    "BadTokenError": "errors",
    "ConfigError": "errors",
    "DEFAULT_HOME": "config",
    "DEFAULT_URL": "config",
    "DataError": "errors",
    "EndpointRetiredError": "errors",
    "Entry": "entries",
    "EntryKind": "entries",
    "NAME_RE": "entries",
    "NOW_ENV": "clock",
    "NoDataYetError": "errors",
    "PipelineError": "errors",
    "QueryError": "errors",
    "ReportArgumentError": "errors",
    "ReportError": "errors",
    "RetriesExhaustedError": "errors",
    "SIM_TIME_HEADER": "simtime",
    "Settings": "config",
    "VastApiError": "errors",
    "WarehouseError": "errors",
    "cadence_cron": "config",
    "check_name": "entries",
    "dagster_dev_command": "resources",
    "env_names": "secrets",
    "first_line": "errors",
    "format_sim_time": "simtime",
    "is_interactive": "progress",
    "load_settings": "config",
    "named_entries": "entries",
    "parse_sim_time": "simtime",
    "progress_bar": "progress",
    "redact": "secrets",
    "retry": "retry",
    "scrub": "secrets",
    "secret_values": "secrets",
    "sql_dir": "resources",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
