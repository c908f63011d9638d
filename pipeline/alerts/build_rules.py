"""The cost rules, evaluated after every warehouse build from its models.

Each rule reuses a model's definitions rather than restating them: billed time, rates and
costs come from `instance_intervals` (idle GPU = its `gpu_idle`, the rule written in
`instance_snapshots` that `idle_spend` counts too), an instance's name and attributes from
`instance_latest`, the credit, burn and runway from `account_now`, the bill from
`cost_reconciliation` (only when that model exists: otherwise `bill_difference` is not
evaluated at all). A run of an instance counts only if it reaches the account's newest
snapshot, so an alert describes the fleet as it is now.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import duckdb

from pipeline.alerts.engine import Condition, Evaluation, human_duration
from pipeline.alerts.history_rules import instance_subject
from pipeline.alerts.settings import BUILD_RULES, AlertSettings

MIN_LOOKBACK_DAYS = 31
SPIKE_WINDOW_DAYS = 7
SPIKE_MIN_HISTORY_HOURS = 24.0  # a "7-day average" over less than a day means nothing

# Runs of consecutive intervals of one instance matching `flag`, reaching the newest
# snapshot of the account: `started_at`, observed `hours` and money over the run.
_RUN_SQL = """
with newest as (select account, max(snapshot_at) as snapshot_at from snapshots group by account),
flagged as (
    select *, coalesce({flag}, false) as hit
    from instance_intervals where day >= $since
),
per_instance as (
    select account, instance_id,
        max(interval_start) filter (where not hit) as last_miss,
        arg_max(hit, interval_start) as last_hit,
        max(next_snapshot_at) as last_next
    from flagged group by account, instance_id
)
select f.account, f.instance_id, any_value(l.label) as label,
    any_value(l.gpu_name) as gpu_name, any_value(l.num_gpus) as num_gpus,
    any_value(l.host_id) as host_id,
    min(f.interval_start) as started_at, sum(f.hours) as hours, sum({money}) as money,
    max_by({rate}, f.interval_start) as rate, max(n.snapshot_at) as observed_at,
    max(f.gpu_util_fraction) as max_gpu_util
from flagged as f
join per_instance as p using (account, instance_id)
join newest as n using (account)
left join instance_latest as l using (account, instance_id)
where p.last_hit and p.last_next = n.snapshot_at and f.hit
    and f.interval_start > coalesce(p.last_miss, '-infinity'::timestamp)
group by f.account, f.instance_id
having sum(f.hours) >= $hours
order by f.account, f.instance_id
"""

# The account's figures are account_now's columns: the rule compares and formats them.
_RUNWAY_SQL = """
select account, snapshot_at, credit_balance, burn_rate_per_hour, burn_per_day, runway_days,
    credit_runs_out_at
from account_now where runway_days < $days order by account
"""

_SPIKE_SQL = """
with newest as (select account, max(snapshot_at) as snapshot_at from snapshots group by account),
window_start as (
    select s.account, min(s.snapshot_at) as first_at
    from snapshots as s join newest as n using (account)
    where s.snapshot_at >= n.snapshot_at - to_days($days)
    group by s.account
),
spent as (
    select i.account, sum(i.total_cost)::double as cost
    from instance_intervals as i join newest as n using (account)
    where i.day >= $since and i.interval_start >= n.snapshot_at - to_days($days)
    group by i.account
),
averaged as (
    select n.account, n.snapshot_at, a.burn_rate_per_hour as burn,
        (epoch(n.snapshot_at) - epoch(w.first_at)) / 3600.0 as hours, s.cost
    from newest as n join window_start as w using (account)
    join spent as s using (account) join account_now as a using (account)
)
select account, snapshot_at, burn, hours, cost / hours as average,
    burn / (cost / hours) as ratio, (burn - cost / hours) * 24 as more_per_day
from averaged
where hours >= $min_hours and cost > 0 and burn > $ratio * (cost / hours)
order by account
"""

_BILL_SQL = """
select account, day, sum(billed_cost)::double as billed,
    sum(coalesce(estimated_cost, 0))::double as estimated
from cost_reconciliation where is_final
group by account, day
having sum(billed_cost) > 0
    and abs(100.0 * (sum(billed_cost) - sum(coalesce(estimated_cost, 0))) / sum(billed_cost))
        > $pct
order by account, day
"""


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables")
            .fetchall()}


def evaluate_build_rules(con: duckdb.DuckDBPyConnection,
                         settings: AlertSettings) -> Evaluation | None:
    """Every cost rule over the warehouse behind `con`; None before the first snapshot."""
    observed = con.execute("select max(snapshot_at) from snapshots").fetchone()[0]
    if observed is None:
        return None
    newest_day = observed.date()
    rules = [r for r in BUILD_RULES
             if r != "bill_difference" or "cost_reconciliation" in _tables(con)]
    conditions: list[Condition] = []
    for rule in rules:
        if settings.enabled(rule):
            conditions += _EVALUATORS[rule](con, settings, newest_day)
    return Evaluation(rules=tuple(rules), accounts=None, conditions=tuple(conditions),
                      observed_at=observed)


def _since(newest_day: Any, threshold_days: float) -> Any:
    return newest_day - timedelta(days=max(MIN_LOOKBACK_DAYS, math.ceil(threshold_days) + 2))


def _subject(r: dict) -> str:
    return instance_subject(r["account"], r["instance_id"], r["label"], r["gpu_name"],
                            r["num_gpus"], r["host_id"])


def _idle_gpu(con: duckdb.DuckDBPyConnection, s: AlertSettings, newest_day: Any
              ) -> list[Condition]:
    sql = _RUN_SQL.format(flag="gpu_idle", money="f.gpu_cost", rate="f.gpu_rate")
    out = []
    for r in _rows(con, sql, {"since": _since(newest_day, s.idle_gpu_hours / 24),
                              "hours": s.idle_gpu_hours}):
        subject = _subject(r)
        summary = (f"{subject} has been billed for its GPU while idle (at most "
                   f"{100 * r['max_gpu_util']:.3g} % utilisation) for "
                   f"{human_duration(timedelta(hours=r['hours']))} (since "
                   f"{r['started_at']:%Y-%m-%d %H:%M} UTC): ${r['money']:,.2f} so far at "
                   f"${r['rate'] or 0:,.3f}/h; stop it or put it to work.")
        out.append(_condition("idle_gpu", r, summary, subject))
    return out


def _stopped_storage(con: duckdb.DuckDBPyConnection, s: AlertSettings, newest_day: Any
                     ) -> list[Condition]:
    sql = _RUN_SQL.format(flag="intended_status = 'stopped' and not gpu_billed",
                          money="f.storage_cost",
                          rate="case when f.storage_billed then f.storage_rate else 0 end")
    out = []
    for r in _rows(con, sql, {"since": _since(newest_day, s.stopped_days),
                              "hours": s.stopped_days * 24}):
        if not r["rate"]:  # not paying storage at the newest snapshot (e.g. host offline)
            continue
        subject = _subject(r)
        summary = (f"{subject} has been stopped for "
                   f"{human_duration(timedelta(hours=r['hours']))} (since "
                   f"{r['started_at']:%Y-%m-%d %H:%M} UTC) and still pays storage: "
                   f"${r['money']:,.2f} so far at ${r['rate']:,.3f}/h; destroy it if "
                   "its disk is no longer needed.")
        out.append(_condition("stopped_storage", r, summary, subject))
    return out


def _condition(rule: str, r: dict, summary: str, subject: str) -> Condition:
    return Condition(rule, f"{rule}/{r['account']}/{r['instance_id']}", r["account"],
                     r["instance_id"], summary, subject, r["started_at"])


def _credit_runway(con: duckdb.DuckDBPyConnection, s: AlertSettings, _day: Any
                   ) -> list[Condition]:
    out = []
    for r in _rows(con, _RUNWAY_SQL, {"days": s.credit_runway_days}):
        subject = f"Account {r['account']}"
        summary = (f"{subject} has ${r['credit_balance']:,.2f} of credit left, "
                   f"{r['runway_days']:.1f} days at the current burn of "
                   f"${r['burn_rate_per_hour']:,.2f}/h (${r['burn_per_day']:,.2f} a day): it "
                   f"runs out around {r['credit_runs_out_at']:%Y-%m-%d %H:%M} UTC; top up or "
                   "stop instances.")
        out.append(Condition("credit_runway", f"credit_runway/{r['account']}", r["account"],
                             None, summary, subject, r["snapshot_at"]))
    return out


def _spend_spike(con: duckdb.DuckDBPyConnection, s: AlertSettings, newest_day: Any
                 ) -> list[Condition]:
    out = []
    params = {"days": SPIKE_WINDOW_DAYS, "since": _since(newest_day, SPIKE_WINDOW_DAYS),
              "min_hours": SPIKE_MIN_HISTORY_HOURS, "ratio": s.spend_spike_ratio}
    for r in _rows(con, _SPIKE_SQL, params):
        subject = f"Account {r['account']}"
        summary = (f"{subject} burns ${r['burn']:,.2f}/h now, {r['ratio']:.1f} times "
                   f"its {SPIKE_WINDOW_DAYS}-day average of ${r['average']:,.2f}/h "
                   f"(${r['more_per_day']:,.2f} a day more); check what was started.")
        out.append(Condition("spend_spike", f"spend_spike/{r['account']}", r["account"], None,
                             summary, subject, r["snapshot_at"]))
    return out


def _bill_difference(con: duckdb.DuckDBPyConnection, s: AlertSettings, _day: Any
                     ) -> list[Condition]:
    out = []
    for r in _rows(con, _BILL_SQL, {"pct": s.bill_difference_pct}):
        pct = 100.0 * (r["billed"] - r["estimated"]) / r["billed"]
        subject = f"The bill of account {r['account']} for {r['day']}"
        summary = (f"{subject} is ${r['billed']:,.2f}, {abs(pct):.1f} % "
                   f"{'more' if pct > 0 else 'less'} than the estimated "
                   f"${r['estimated']:,.2f}; see cost_reconciliation for the instances that "
                   "differ.")
        started = datetime.combine(r["day"], time.min, tzinfo=UTC)
        out.append(Condition("bill_difference", f"bill_difference/{r['account']}/{r['day']}",
                             r["account"], None, summary, subject, started))
    return out


_EVALUATORS: dict[str, Callable[[duckdb.DuckDBPyConnection, AlertSettings, Any],
                                list[Condition]]] = {
    "idle_gpu": _idle_gpu,
    "stopped_storage": _stopped_storage,
    "credit_runway": _credit_runway,
    "spend_spike": _spend_spike,
    "bill_difference": _bill_difference,
}
