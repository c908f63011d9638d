"""The simulator's defaults, in one place: its port, seed, fleet size, page sizes, rate
limits and market size.

The CLI's `simulator` command, the demo, the embedded server a `source = "simulator"`
account collects from and the tests all start the simulator; they take these values
rather than repeating literals, so changing one (say the demo's market size) changes it
everywhere at once.
"""

from __future__ import annotations

from datetime import UTC, datetime

# ---- the account and its fleet ---------------------------------------------------------

# The one key `vast-pipeline simulator` and the demo serve (printed on purpose: not a secret).
DEMO_API_KEY = "sim-demo-key"
DEFAULT_PORT = 8765
DEFAULT_SEED = 7
DEFAULT_FLEET_SIZE = 40
# Moment zero of the fleet model: instance ids and hourly arrival slots count from it.
DEFAULT_ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)
# Storage volumes (contracts of type `volume`) rented beside the instances.
DEFAULT_VOLUMES = 2

# ---- rate limits ----------------------------------------------------------------------------

# Seconds between two accepted calls of one key to one endpoint (429 below it, with no
# Retry-After): the served `vast-pipeline simulator` mimics Vast.ai's about one a second;
# an embedded server (the demo, the tests) enforces none unless asked.
SERVE_MIN_INTERVAL = 1.0
EMBEDDED_MIN_INTERVAL = 0.0
# The demo's server: polite clients keep a little more than this between calls.
DEMO_MIN_INTERVAL = 0.01
# The offer search's own limit: Vast.ai allows about 10 requests a minute per IP (one every
# 6 s); the simulator's default is fast, for the demo and the tests.
SEARCH_MIN_INTERVAL = 0.02
REAL_SEARCH_MIN_INTERVAL = 6.0

# ---- page sizes ------------------------------------------------------------------------------

V1_PAGE_MAX = 25           # /api/v1/instances/ never serves more per page
V1_PAGE_NONPOSITIVE = 5    # what it serves for limit <= 0
CHARGES_PAGE_DEFAULT = 100
CHARGES_PAGE_MAX = 500
# The most results one charges page carries, whatever `limit` asks: the real service may
# return fewer rows than asked, so clients must follow next_token. Small enough that a day
# of the demo fleet takes a few pages.
CHARGES_PAGE_SERVED = 20
# Filtered, sorted instance listings kept for the pages that follow the first.
LISTING_CACHE_MAX = 8

# ---- the market ---------------------------------------------------------------------------------

# Machines listed on the simulated market besides the fleet's own: a few hundred offers
# for the demo (each machine is offered on demand and interruptible, in one or two sizes).
DEFAULT_MARKET_MACHINES = 200
# A bigger market for benchmarks (`MarketModel(machines=BENCH_MARKET_MACHINES)`).
BENCH_MARKET_MACHINES = 2500
# Offers the search returns when the query has no `limit`.
SEARCH_LIMIT_DEFAULT = 64
SEARCH_LIMIT_MAX = 10_000
# `allocated_storage` (GB) when the query has none (the spec's default).
SEARCH_ALLOCATED_STORAGE = 8.0
