"""The embedded Vast.ai API simulator: a deterministic fleet model and the HTTP
server the demo and the tests collect from.

The fleet: `fleet` (arrivals and ids) over `lifecycle` (an instance's phases), `hosts`
(machines, outages, reliability), `records` (the served record and its drift), `billing`
(what each contract is billed), `catalogue` (GPU models, places) and `seeded` (keyed
randomness). The server: `simulator` (lifecycle, routing, auth, rate limit) with
`handler` (http.server), `faults`, `replies`, and the endpoints `instances` and `charges`
speaking the query language of `filters` and `cursors`. Every default (port, seed, sizes,
page sizes, rate limits) is in `defaults`. The names below are what the packages above
import; they load on first use, so importing the package stays cheap.
"""

from __future__ import annotations

from pipeline.core.lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "ACTUAL_STATUSES": "lifecycle",
    "CUR_STATES": "lifecycle",
    "DEMO_API_KEY": "defaults",
    "FaultConfig": "faults",
    "FleetModel": "fleet",
    "INTENDED_STATUSES": "lifecycle",
    "MEAN_LIFETIME_SECONDS": "lifecycle",
    "PHASES": "lifecycle",
    "SIM_TIME_HEADER": "simulator",
    "SimulatorServer": "simulator",
    "THROTTLE_TEXT": "faults",
    "serve": "simulator",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
