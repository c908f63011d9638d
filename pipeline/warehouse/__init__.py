"""The DuckDB warehouse: model discovery from sql/, the (incremental) build, the
confined read-only query and the checks of the report marts.

Modules: `build`, `marts`, `models`, `paths`, `quality`, `query`. The names below are what
the packages above import; they load on first use, so importing the package stays cheap.
"""

from __future__ import annotations

from importlib import import_module

# public name -> the module of this package that defines it
_EXPORTS = {
    "BuildResult": "build",
    "CheckOutcome": "quality",
    "HISTORY_CHECKS": "quality",
    "MART_CHECKS": "marts",
    "MART_CHECK_TABLES": "marts",
    "SQL_DIR": "models",
    "build_for": "build",
    "check_freshness": "quality",
    "check_marts": "marts",
    "discover_models": "models",
    "format_result": "query",
    "interval_cap_minutes": "models",
    "open_read_only": "query",
    "query_each": "query",
    "render_sql": "models",
    "render_sql_over_files": "models",
    "run_history_checks": "quality",
    "statement_heading": "query",
}
__all__ = [
    "HISTORY_CHECKS",
    "MART_CHECKS",
    "MART_CHECK_TABLES",
    "SQL_DIR",
    "BuildResult",
    "CheckOutcome",
    "build_for",
    "check_freshness",
    "check_marts",
    "discover_models",
    "format_result",
    "interval_cap_minutes",
    "open_read_only",
    "query_each",
    "render_sql",
    "render_sql_over_files",
    "run_history_checks",
    "statement_heading",
]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
