"""The fleet as Prometheus metrics: `/metrics` over HTTP and a textfile for node_exporter.

Modules: `catalog` (every metric, with the model column it reads), `collect` (reading
them at scrape time through the confined read-only connection and the alert state),
`serve` (the HTTP endpoint and the atomic textfile). Nothing here calls Vast.ai.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "DEFAULT_LISTEN": "serve",
    "METRICS": "catalog",
    "Metric": "catalog",
    "families": "collect",
    "metrics_server": "serve",
    "parse_listen": "serve",
    "registry_for": "collect",
    "write_textfile": "serve",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
