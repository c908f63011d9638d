"""The DuckDB warehouse: model discovery from sql/, the (incremental) build, the
confined read-only query and the checks of the report marts.

Modules: `models` (discovery from sql/), `paths`, the build (`build`: the entry points
and their steps; `state`, `window`, `sources`, `dbfile`, `dailystore`, `chunks`,
`runners`), the read side (`query`, `marts`, `quality`). The names below are what the
packages above import; they load on first use, so importing the package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "BuildResult": "build",
    "CheckOutcome": "quality",
    "DB_NAME": "state",
    "HISTORY_CHECKS": "quality",
    "MART_CHECKS": "marts",
    "MART_CHECK_TABLES": "marts",
    "RETAIN_SUPERSEDED_SECONDS": "state",
    "SQL_DIR": "models",
    "STATE_NAME": "state",
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

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
