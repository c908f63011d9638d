"""Expected report figures for the hand-made scenario, worked out in plain Python.

Nothing here reads the warehouse or reuses the product's SQL: the figures come from the
scenario's own instances (`report_fixtures.scenario_specs`) and collection times, under
the rules docs/semantics.md states:

- each instance listed in a snapshot gets an interval to its account's next snapshot,
  capped at 2 x the cadence; the state seen at the start holds;
- GPU cost = dph_base while running or frozen; storage = storage_total_cost in every
  state except offline; days split at UTC midnight;
- only time intended 'running' counts for reliability: starting until the first status
  other than NULL/created/loading, then up (running) or down (anything else);
- an incident is a run of down intervals, each starting at the previous one's next
  snapshot; idle = storage while the GPU is not billed + GPU billed at < 5% utilisation;
- the projection adds the current burn rate for the hours of the month after the data.

If the warehouse or a report drifts from these rules, the comparison fails.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from pipeline.reports.model import fmt
from tests.support.report_fixtures import CADENCE, DAYS, START, Spec, scenario_specs, snapshot_times

CAP = 2 * CADENCE
STARTING = (None, "created", "loading")


@dataclass(frozen=True)
class Interval:
    account: str
    instance_id: int
    start: datetime
    end: datetime
    next_snapshot: datetime
    record: dict
    starting: bool
    up: bool
    down: bool

    @property
    def gpu_billed(self) -> bool:
        return self.record["actual_status"] in ("running", "frozen")

    @property
    def storage_billed(self) -> bool:
        return self.record["actual_status"] != "offline"

    def pieces(self) -> list[tuple[date, float]]:
        """(UTC day, hours) of the interval on each side of every midnight it spans."""
        out, s = [], self.start
        while s < self.end:
            midnight = datetime(s.year, s.month, s.day, tzinfo=UTC) + timedelta(days=1)
            e = min(self.end, midnight)
            out.append((s.date(), (e - s).total_seconds() / 3600))
            s = e
        return out


@dataclass(frozen=True)
class Piece:
    """The part of one interval on one UTC day, with its money and hours."""

    account: str
    instance_id: int
    day: date
    hours: float
    gpu_cost: float
    storage_cost: float
    running_hours: float
    gpu_hours: float
    stopped_storage_cost: float
    idle_gpu_cost: float
    up: float
    down: float
    starting: float


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _first_of_next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


class Scenario:
    """The scenario written from `start` for `days` days, and what its reports must say."""

    def __init__(self, start: datetime = START, days: int = DAYS) -> None:
        self.start, self.days = start, days
        self.specs: list[Spec] = scenario_specs(start)
        self.times = snapshot_times(start, days)

    # -- intervals ---------------------------------------------------------------------

    def _settled_at(self, spec: Spec) -> datetime | None:
        for t in self.times:
            rec = spec.record(t)
            if rec is not None and rec["actual_status"] not in STARTING:
                return t
        return None

    @cached_property
    def intervals(self) -> list[Interval]:
        out = []
        for spec in self.specs:
            settled = self._settled_at(spec)
            for t, nxt in zip(self.times, self.times[1:], strict=False):
                rec = spec.record(t)
                if rec is None:
                    continue
                meant = rec["intended_status"] == "running"
                before = settled is None or t < settled
                out.append(Interval(
                    spec.account, spec.id, t, min(nxt, t + CAP), nxt, rec,
                    starting=meant and before, up=meant and rec["actual_status"] == "running",
                    down=meant and not before and rec["actual_status"] != "running"))
        return out

    @cached_property
    def pieces(self) -> list[Piece]:
        out = []
        for iv in self.intervals:
            rec = iv.record
            gpu_rate = rec["dph_base"] if iv.gpu_billed else 0.0
            storage_rate = rec["storage_total_cost"] if iv.storage_billed else 0.0
            idle = iv.gpu_billed and rec["gpu_util"] < 0.05
            for day, h in iv.pieces():
                out.append(Piece(
                    iv.account, iv.instance_id, day, h, gpu_rate * h, storage_rate * h,
                    h if iv.gpu_billed else 0.0,
                    h * rec["num_gpus"] if iv.gpu_billed else 0.0,
                    storage_rate * h if not iv.gpu_billed else 0.0,
                    gpu_rate * h if idle else 0.0,
                    h if iv.up else 0.0, h if iv.down else 0.0, h if iv.starting else 0.0))
        return out

    def _pieces(self, d0: date, d1: date, account: str | None) -> list[Piece]:
        return [p for p in self.pieces
                if d0 <= p.day <= d1 and account in (None, p.account)]

    # -- cost --------------------------------------------------------------------------

    def newest(self, account: str | None) -> tuple[datetime, float]:
        """(newest snapshot, burn rate $/h of the instances listed in it)."""
        t = self.times[-1]  # both accounts are collected at every snapshot time
        burn = 0.0
        for spec in self.specs:
            rec = spec.record(t)
            if rec is None or account not in (None, spec.account):
                continue
            if rec["actual_status"] in ("running", "frozen"):
                burn += rec["dph_base"]
            if rec["actual_status"] != "offline":
                burn += rec["storage_total_cost"]
        return t, burn

    def credit(self, account: str | None) -> tuple[float | None, float | None]:
        """(credit balance summed over the accounts, the shortest runway in days): each
        account's balance is the one its instances report in the newest snapshot."""
        t = self.times[-1]
        balances = {spec.account: rec["credit_balance"] for spec in self.specs
                    if account in (None, spec.account) and (rec := spec.record(t)) is not None}
        runways = [balance / burn / 24 for name, balance in balances.items()
                   if (burn := self.newest(name)[1]) > 0]
        return (sum(balances.values()) if balances else None,
                min(runways) if runways else None)

    def per_instance_cost(self, d0: date, d1: date,
                          account: str | None = None) -> dict[tuple[str, int], float]:
        totals: dict[tuple[str, int], float] = defaultdict(float)
        for p in self._pieces(d0, d1, account):
            totals[(p.account, p.instance_id)] += p.gpu_cost + p.storage_cost
        return dict(totals)

    def daily_cost(self, d0: date, d1: date) -> dict[tuple[str, int, date], tuple[float, float]]:
        """(GPU, storage) money per (account, instance, day) with any money."""
        out: dict[tuple[str, int, date], tuple[float, float]] = {}
        for p in self._pieces(d0, d1, None):
            gpu, storage = out.get((p.account, p.instance_id, p.day), (0.0, 0.0))
            out[(p.account, p.instance_id, p.day)] = (gpu + p.gpu_cost, storage + p.storage_cost)
        return {k: v for k, v in out.items() if sum(v) > 0}

    def cost(self, d0: date, d1: date, account: str | None = None) -> dict[str, float | None]:
        ps = self._pieces(d0, d1, account)
        gpu, storage = sum(p.gpu_cost for p in ps), sum(p.storage_cost for p in ps)
        gpu_hours = sum(p.gpu_hours for p in ps)
        stopped, idle_gpu = sum(p.stopped_storage_cost for p in ps), sum(
            p.idle_gpu_cost for p in ps)
        mtd = sum(p.gpu_cost + p.storage_cost for p in self._pieces(d1.replace(day=1), d1,
                                                                     account))
        as_of, burn = self.newest(account)
        month_start = _midnight(d1.replace(day=1))
        data_end = max(min(_midnight(d1) + timedelta(days=1), as_of), month_start)
        left = (_midnight(_first_of_next_month(d1)) - data_end).total_seconds() / 3600
        return {
            "window_spend": gpu + storage, "month_to_date": mtd,
            "projected_month": mtd + burn * max(left, 0.0),
            "cost_per_gpu_hour": (gpu + storage) / gpu_hours if gpu_hours else None,
            "idle_spend": stopped + idle_gpu, "burn_rate_per_hour": burn,
            "gpu_cost": gpu, "storage_cost": storage, "gpu_hours": gpu_hours,
            "instance_hours": sum(p.running_hours for p in ps),
            "instances": len({(p.account, p.instance_id) for p in ps}),
            "idle_stopped_storage": stopped, "idle_gpu": idle_gpu,
            "burn_per_day": 24 * burn, "burn_per_month": 730 * burn,
            "credit_balance": self.credit(account)[0], "runway_days": self.credit(account)[1],
        }

    # -- reliability -------------------------------------------------------------------

    @cached_property
    def incidents(self) -> list[tuple[str, int, datetime, datetime, float]]:
        """(account, instance, started, ended, observed down hours), whole history."""
        runs: list[list[Interval]] = []
        for iv in sorted((i for i in self.intervals if i.down),
                         key=lambda i: (i.account, i.instance_id, i.start)):
            last = runs[-1][-1] if runs else None
            if (last and (last.account, last.instance_id) == (iv.account, iv.instance_id)
                    and last.next_snapshot == iv.start):
                runs[-1].append(iv)
            else:
                runs.append([iv])
        return [(r[0].account, r[0].instance_id, r[0].start, r[-1].end,
                 sum((i.end - i.start).total_seconds() / 3600 for i in r)) for r in runs]

    def _coverage(self, t0: datetime, t1: datetime, keys: set[tuple[str, int]]) -> float:
        covered = span = 0.0
        for key in keys:
            clipped = [(max(i.start, t0), min(i.end, t1)) for i in self.intervals
                       if (i.account, i.instance_id) == key and i.end > t0 and i.start < t1]
            covered += sum((e - s).total_seconds() for s, e in clipped)
            span += (max(e for _, e in clipped) - min(s for s, _ in clipped)).total_seconds()
        return covered / span

    def reliability(self, d0: date, d1: date,
                    account: str | None = None) -> dict[str, float | None]:
        t0, t1 = _midnight(d0), _midnight(d1) + timedelta(days=1)
        ps = self._pieces(d0, d1, account)
        up, down = sum(p.up for p in ps), sum(p.down for p in ps)
        keys = {(p.account, p.instance_id) for p in ps}
        hit = [h for a, _, s, e, h in self.incidents
               if account in (None, a) and s < t1 and e > t0]
        first_seen = [spec for spec in self.specs
                      if account in (None, spec.account) and t0 <= self._first_seen(spec) < t1]
        starts = [h for spec in first_seen if (h := self._time_to_running(spec)) is not None]
        hosts = {s.host_id for s in self.specs if (s.account, s.id) in keys}
        return {
            "availability": up / (up + down) if up + down else None,
            "coverage": self._coverage(t0, t1, keys), "incidents": len(hit),
            "down_hours": down, "mttr_hours": statistics.mean(hit) if hit else None,
            "time_to_running_median": statistics.median(starts) if starts else None,
            "up_hours": up, "observed_hours": sum(p.hours for p in ps),
            "starting_hours": sum(p.starting for p in ps),
            "mtbf_hours": up / len(hit) if hit else None,
            "instances": len(keys), "hosts": len(hosts),
            "time_to_running_mean": statistics.mean(starts) if starts else None,
            "starts": len(first_seen), "starts_reached_running": len(starts),
            "time_to_running_max": max(starts) if starts else None,
        }

    def _time_to_running(self, spec: Spec) -> float | None:
        """Hours from the first snapshot listing the instance to the first one showing it
        running; None when no snapshot ever did."""
        running = next((t for t in self.times if (rec := spec.record(t)) is not None
                        and rec["actual_status"] == "running"), None)
        return None if running is None else (
            (running - self._first_seen(spec)).total_seconds() / 3600)

    # -- the reports' tables, row by row --------------------------------------------------

    def _spec(self, account: str, instance_id: int) -> Spec:
        return next(s for s in self.specs if (s.account, s.id) == (account, instance_id))

    def cost_tables(self, d0: date, d1: date,
                    account: str | None = None) -> dict[str, dict[object, dict[str, float]]]:
        """Rows of the cost report's tables keyed by day, (account, instance) and label."""
        ps = self._pieces(d0, d1, account)
        daily: dict[object, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        inst: dict[object, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for p in ps:
            if p.gpu_cost + p.storage_cost == 0 and p.running_hours == 0:
                continue  # no money and no billed hours: no spend row that day
            for row in (daily[p.day], inst[(p.account, p.instance_id)]):
                row["gpu_cost"] += p.gpu_cost
                row["storage_cost"] += p.storage_cost
                row["total_cost"] += p.gpu_cost + p.storage_cost
                row["gpu_hours"] += p.gpu_hours
                row["idle_cost"] += p.stopped_storage_cost + p.idle_gpu_cost
            inst[(p.account, p.instance_id)]["instance_hours"] += p.running_hours
        for row in inst.values():
            row["cost_per_gpu_hour"] = (row["total_cost"] / row["gpu_hours"]
                                        if row["gpu_hours"] else None)
        total = sum(r["total_cost"] for r in inst.values())
        labels: dict[object, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for key, row in inst.items():
            label = self._spec(*key).label or "(no label)"
            labels[label]["contracts"] += 1
            labels[label]["gpu_hours"] += row["gpu_hours"]
            labels[label]["total_cost"] += row["total_cost"]
        for row in labels.values():
            row["share_of_spend"] = row["total_cost"] / total if total else None
        return {"daily": daily, "instances": inst, "labels": labels}

    def reliability_tables(self, d0: date, d1: date, account: str | None = None
                           ) -> dict[str, dict[object, dict[str, float | None]]]:
        """Rows of the reliability report's tables keyed by (account, instance), host,
        (account, instance, start) and (account, instance)."""
        t0, t1 = _midnight(d0), _midnight(d1) + timedelta(days=1)
        inst: dict[object, dict[str, float | None]] = defaultdict(lambda: defaultdict(float))
        for p in self._pieces(d0, d1, account):
            row = inst[(p.account, p.instance_id)]
            row["up_hours"] += p.up
            row["down_hours"] += p.down
        started = defaultdict(int)
        for a, i, s, _e, _h in self.incidents:
            if account in (None, a) and t0 <= s < t1:
                started[(a, i)] += 1
        hosts: dict[object, dict[str, float | None]] = defaultdict(lambda: defaultdict(float))
        for key, row in inst.items():
            row["incidents_started"] = started[key]
            row["coverage"] = self._coverage(t0, t1, {key})
            host = hosts[self._spec(*key).host_id]
            for k in ("up_hours", "down_hours", "incidents_started"):
                host[k] += row[k]
        for row in (*inst.values(), *hosts.values()):
            meant = row["up_hours"] + row["down_hours"]
            row["availability"] = row["up_hours"] / meant if meant else None
        incidents = {(a, i, s): {"hours": h} for a, i, s, e, h in self.incidents
                     if account in (None, a) and s < t1 and e > t0}
        starts = {(spec.account, spec.id): {"time_to_running_hours": self._time_to_running(spec)}
                  for spec in self.specs
                  if account in (None, spec.account) and t0 <= self._first_seen(spec) < t1}
        return {"instances": inst, "hosts": hosts, "incidents": incidents,
                "time_to_running": starts}

    def _first_seen(self, spec: Spec) -> datetime:
        return next(t for t in self.times if spec.record(t) is not None)


def displays(value: float | None, unit: str) -> set[str]:
    """How `value` may be displayed: computed in another order, a sum may land on the other
    side of a rounding boundary (70.425 shown as $70.42 or $70.43), never further."""
    if value is None:
        return {fmt(None, unit)}
    return {fmt(v, unit) for v in (value * (1 - 1e-9), value, value * (1 + 1e-9))}
