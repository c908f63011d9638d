"""The one clock of a run: every default window ("today", "the last 7 days") comes from it.

Why: a run that reads the wall clock in several places can straddle midnight and give its
steps different days (the demo once collected the last 24 hours but billed and reported
only the new UTC day). So a command reads `now()` once, at its start, and passes that
moment (or its UTC day) down; the code below it takes "now" as a parameter and never
derives a window from the wall clock.

For tests only, `VAST_PIPELINE_NOW` (ISO-8601, e.g. `2026-12-08T00:10:00Z`; naive = UTC)
pins the clock of a whole CLI run, in a subprocess too. It moves the windows only: the
moments that order records (a bill's `fetched_at`, log file names) stay on the wall clock,
and a pinned moment never reaches the Vast.ai API, because only the demo tells its
embedded simulator which moment to answer for (the `X-Vast-Sim-Time` header, which the
client sends to loopback only; see `pipeline.core.simtime`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, date, datetime

from pipeline.core.errors import ConfigError

NOW_ENV = "VAST_PIPELINE_NOW"


def now(env: Mapping[str, str] | None = None) -> datetime:
    """This moment in UTC, or the one `VAST_PIPELINE_NOW` pins (for tests)."""
    env = os.environ if env is None else env
    pinned = env.get(NOW_ENV, "").strip()
    if not pinned:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(pinned.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{NOW_ENV}={pinned} is not an ISO-8601 moment such as "
                          f"2026-12-08T00:10:00Z; unset it (it pins the clock for tests)."
                          ) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def today(env: Mapping[str, str] | None = None) -> date:
    """The UTC day of `now()`."""
    return now(env).date()
