"""The simulator-only `X-Vast-Sim-Time` header: its name and its value format, once.

The client sends it (to loopback only) and the simulator answers for that moment; both
import it from here, so they cannot disagree, and the client need not import the
simulator's server code.
"""

from __future__ import annotations

from datetime import UTC, datetime

SIM_TIME_HEADER = "X-Vast-Sim-Time"


def format_sim_time(moment: datetime) -> str:
    """The header value for `moment` (ISO-8601 in UTC; a naive moment is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def parse_sim_time(raw: str) -> datetime:
    """A header value: ISO-8601 (`Z` allowed, naive = UTC) or epoch seconds."""
    raw = raw.strip()
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
