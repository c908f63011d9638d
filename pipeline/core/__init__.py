"""The ground floor every other package stands on: errors and their exit codes, the
settings file, the run's clock and the simulator's time header, secrets scrubbing,
progress bars and where shipped files live. It imports nothing above it.

Modules: `clock`, `config`, `errors`, `progress`, `resources`, `secrets`, `simtime`. The
names below are what the packages above import; they load on first use, so importing the
package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "Account": "config",
    "ApiUnreachableError": "errors",
    "AuthError": "errors",
    "BadResponseError": "errors",
    "BadTokenError": "errors",
    "ConfigError": "errors",
    "DEFAULT_HOME": "config",
    "DEFAULT_URL": "config",
    "DataError": "errors",
    "EndpointRetiredError": "errors",
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
    "dagster_dev_command": "resources",
    "env_names": "secrets",
    "first_line": "errors",
    "format_sim_time": "simtime",
    "is_interactive": "progress",
    "load_settings": "config",
    "local_dir": "config",
    "parse_sim_time": "simtime",
    "prepare_dagster_home": "config",
    "progress_bar": "progress",
    "redact": "secrets",
    "scrub": "secrets",
    "secret_values": "secrets",
    "sql_dir": "resources",
    "warehouse_file": "config",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
