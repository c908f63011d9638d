"""`vast-pipeline alerts`: what fires now and the recent transitions with their delivery.

Read from the alert state and log files directly (not the warehouse), so it is current
right after a collection. Receivers appear by name only.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from pipeline.alerts.engine import read_log, read_state
from pipeline.alerts.settings import alert_settings
from pipeline.core import clock
from pipeline.core.config import Settings
from pipeline.storage.store import Store

RECENT_DAYS = 7


def delivery_status(transition: dict[str, Any], deliveries: list[dict[str, Any]],
                    queued: set[tuple[str, str]]) -> str:
    """'default: delivered (2 attempts); ops: queued (4 attempts, HTTP 500)' per receiver."""
    if not transition["receivers"]:
        return "no receiver configured"
    parts = []
    for name in transition["receivers"]:
        mine = [d for d in deliveries if d["receiver"] == name]
        attempts = sum(d["attempts"] for d in mine)
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if any(d["accepted"] for d in mine):
            parts.append(f"{name}: delivered ({tries})")
        elif (transition["transition_id"], name) in queued:
            last = f", {mine[-1]['error']}" if mine else ""
            parts.append(f"{name}: queued ({tries}{last})")
        else:
            parts.append(f"{name}: not delivered")
    return "; ".join(parts)


def alert_lines(settings: Settings, limit: int = 20, today: date | None = None) -> list[str]:
    """The listing; its recent transitions are those of the `RECENT_DAYS` UTC days ending
    `today` (default: the run's one clock, `pipeline.core.clock.today()`)."""
    today = today or clock.today()
    store = Store(settings.home)
    state = read_state(store)
    alerts = alert_settings(settings)
    receivers = ", ".join(f"{r.name} (URL from ${r.url_env})" for r in alerts.receivers)
    lines = [f"receivers: {receivers or 'none (export VAST_PIPELINE_ALERT_WEBHOOK)'}",
             f"heartbeat: {'set' if alerts.heartbeat_url else 'not set'}"
             + (f"; rules switched off: {', '.join(sorted(alerts.disabled))}"
                if alerts.disabled else "")]
    firing = sorted(state["firing"].values(), key=lambda a: a["started_at"])
    lines.append(f"firing: {len(firing)}")
    lines += [f"  {a['key']} since {a['started_at']}: {a['summary']}" for a in firing]
    outbox = state["outbox"]
    if outbox:
        lines.append(f"queued for delivery: {len(outbox)} message(s), retried next run")
    records = read_log(store, today - timedelta(days=RECENT_DAYS - 1), today)
    transitions = [r for r in records if r["record"] == "transition"]
    deliveries = [r for r in records if r["record"] == "delivery"]
    queued = {(i["payload"]["id"], i["receiver"]) for i in outbox}
    shown = transitions[-limit:][::-1]
    lines.append(f"recent transitions (last {RECENT_DAYS} days, newest first): "
                 f"{len(shown)} of {len(transitions)}")
    for t in shown:
        mine = [d for d in deliveries if d["transition_id"] == t["transition_id"]]
        lines.append(f"  {t['observed_at']} {t['state']:<8} {t['key']} -> "
                     f"{delivery_status(t, mine, queued)}")
        lines.append(f"      {t['summary']}")
    return lines
