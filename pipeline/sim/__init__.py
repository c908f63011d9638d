"""The embedded Vast.ai API simulator: a deterministic fleet model and the HTTP
server the demo and the tests collect from.

Modules: `fleet`, `simulator`. The names below are what the packages above import; they load
on first use, so importing the package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "ACTUAL_STATUSES": "fleet",
    "CUR_STATES": "fleet",
    "DEMO_API_KEY": "simulator",
    "FaultConfig": "simulator",
    "FleetModel": "fleet",
    "INTENDED_STATUSES": "fleet",
    "MEAN_LIFETIME_SECONDS": "fleet",
    "PHASES": "fleet",
    "SIM_TIME_HEADER": "simulator",
    "SimulatorServer": "simulator",
    "THROTTLE_TEXT": "simulator",
    "serve": "simulator",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
