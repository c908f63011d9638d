"""`instance_down`, evaluated right after a collection from the Parquet history itself.

The warehouse may not be built yet (it follows collection), so this reads the account's
recent snapshots straight from Parquet through the warehouse's own models, rendered over
one account's files of the lookback window: `snapshots`, `instance_snapshots`,
`instance_day_summary`, `instance_latest` and `instance_states`. "Down" is therefore
`instance_states.is_down` itself, the column `instance_intervals` copies (intended status
running, past the starting phase, actual status anything but running, NULL included), and
the instance is named by `instance_latest`'s attributes. The one difference is what the
models see: the lookback window, not the whole history, so an instance that settled
before the window and has shown only NULL/created/loading since counts as starting here.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from pipeline.alerts.engine import Condition, Evaluation, human_duration
from pipeline.storage.datasets import dataset
from pipeline.storage.store import Store
from pipeline.warehouse.models import discover_models, render_sql, render_sql_over_files

# Days of history read: an outage longer than this is still reported, from this far back.
LOOKBACK_DAYS = 7
RULE = "instance_down"
NOT_LISTED = "is no longer listed (destroyed or removed from the account)"
# The history datasets read from files, then the models built over them.
_FILE_MODELS = ("instance_snapshots", "snapshots")
_DERIVED_MODELS = ("instance_day_summary", "instance_latest", "instance_states")
# What this rule reads of instance_latest: the end of the starting phase and the names.
_LATEST_COLUMNS = ("account, instance_id, first_settled_at, label, gpu_name, num_gpus, "
                   "host_id, machine_id")

_DOWN_SQL = """
with recent as (
    select * from instance_states
    where account = $account and snapshot_date >= $since
),
timeline as (
    select distinct snapshot_at from snapshots
    where account = $account and snapshot_date >= $since
    union
    select distinct snapshot_at from recent
),
newest as (select max(snapshot_at) as snapshot_at from timeline),
now_down as (
    select r.* from recent as r, newest as n
    where r.snapshot_at = n.snapshot_at and r.is_down
),
last_good as (
    select d.instance_id, max(t.snapshot_at) as last_good_at
    from now_down as d cross join timeline as t
    left join recent as f
        on f.instance_id = d.instance_id and f.snapshot_at = t.snapshot_at and f.is_down
    where f.instance_id is null
    group by d.instance_id
)
select
    d.instance_id, l.label, l.gpu_name, l.num_gpus, l.host_id, l.machine_id,
    coalesce(d.actual_status, 'no status') as status,
    (select min(t.snapshot_at) from timeline as t
     where t.snapshot_at > coalesce(g.last_good_at, '-infinity'::timestamp)) as started_at,
    d.snapshot_at as observed_at,
    d.burn_rate_per_hour as burn_per_hour
from now_down as d left join last_good as g using (instance_id)
left join instance_latest as l on l.account = d.account and l.instance_id = d.instance_id
order by d.instance_id
"""

_NEWEST_SQL = """
select instance_id, intended_status, actual_status
from instance_snapshots
where account = $account and snapshot_date >= $since
    and snapshot_at = (select max(snapshot_at) from instance_snapshots
                       where account = $account and snapshot_date >= $since)
"""


@dataclass(frozen=True)
class _Down:
    instance_id: int
    label: str | None
    gpu_name: str | None
    num_gpus: int | None
    host_id: int | None
    machine_id: int | None
    status: str
    started_at: datetime
    observed_at: datetime
    burn_per_hour: float


def instance_subject(account: str, instance_id: int, label: str | None, gpu: str | None,
                     num_gpus: int | None, host_id: int | None) -> str:
    """'Instance 2004 "train-a" (2x RTX 4090, host 77) of account default'."""
    name = f' "{label}"' if label else ""
    gpus = f"{num_gpus}x {gpu}" if gpu and num_gpus and num_gpus > 1 else (gpu or "GPU ?")
    host = f", host {host_id}" if host_id is not None else ""
    return f"Instance {instance_id}{name} ({gpus}{host}) of account {account}"



def _connect(store: Store, account: str, days: list[date],
             scratch: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the models' views over the account's Parquet files of
    `days` only, so the cost is that of the lookback window, not of the whole history (an
    empty file in `scratch` stands in for a dataset with none: no instance ever listed)."""
    con = store.duckdb()  # reads s3:// too when the home is on an object store
    con.execute("SET TimeZone = 'UTC'")
    # each view below binds the staging views again: read each file's footer once
    con.execute("SET parquet_metadata_cache = true")
    models = {m.name: m for m in discover_models()}
    for name in _FILE_MODELS:
        files = store.parquet_files(name, days, [account])
        if not files:
            folder = Path(scratch, name, "account=_none_", "snapshot_date=1970-01-01")
            folder.mkdir(parents=True)
            files = [str(folder / "part-0.parquet")]
            pq.write_table(dataset(name).schema.empty_table(), files[0])
        # a week of files: reading their schemas whatever they are costs little
        sql = render_sql_over_files(models[name], {f"{name}_union_by_name": "true"},
                                    {name: files})
        con.execute(f"create view {name} as {sql}")
    # the days a daily model covers, as the warehouse build sets them for a window
    con.execute("SET VARIABLE build_from = ?::DATE", [min(days, default=date.min)])
    con.execute("SET VARIABLE build_to = DATE '9999-12-31'")
    for name in _DERIVED_MODELS:
        sql = render_sql(models[name], {})
        if name == "instance_latest":  # read twice: computed once, for what is read
            con.execute(f"create table {name} as select {_LATEST_COLUMNS} from ({sql})")
        else:
            con.execute(f"create view {name} as {sql}")
    return con


def evaluate_instance_down(store: Store, account: str, minutes: float) -> Evaluation | None:
    """The instances of `account` down for at least `minutes` at its newest snapshot.

    None when the account has no landed history yet (nothing can be said, nothing resolves).
    """
    days = [d for a, d in store.list_partitions("snapshots") if a == account]
    if not days:
        return None
    since = max(days) - timedelta(days=LOOKBACK_DAYS)
    params = {"account": account, "since": since}
    with tempfile.TemporaryDirectory(prefix="vast-alerts-") as scratch:
        con = _connect(store, account, [d for d in days if d >= since], scratch)
        try:
            return _evaluate(con, account, minutes, params)
        finally:
            con.close()


def _evaluate(con: duckdb.DuckDBPyConnection, account: str, minutes: float,
              params: dict) -> Evaluation | None:
    rows = [_Down(*r) for r in con.execute(_DOWN_SQL, params).fetchall()]
    newest = {r[0]: r[1:] for r in con.execute(_NEWEST_SQL, params).fetchall()}
    observed = con.execute(
        "select max(snapshot_at) from snapshots where account = $account and "
        "snapshot_date >= $since", params).fetchone()[0]
    if observed is None:
        return None
    conditions = tuple(_condition(account, d) for d in rows
                       if d.observed_at - d.started_at >= timedelta(minutes=minutes))
    return Evaluation(rules=(RULE,), accounts=(account,), conditions=conditions,
                      observed_at=observed, resolutions=_reasons(account, newest),
                      otherwise=NOT_LISTED)


def _condition(account: str, d: _Down) -> Condition:
    subject = instance_subject(account, d.instance_id, d.label, d.gpu_name, d.num_gpus,
                               d.host_id)
    lasted = human_duration(d.observed_at - d.started_at)
    money = (f"; it still costs ${d.burn_per_hour:,.3f}/h meanwhile" if d.burn_per_hour
             else "; it is not billed meanwhile")
    summary = (f"{subject} has not been running (status {d.status}) for {lasted} since "
               f"{d.started_at:%Y-%m-%d %H:%M} UTC while meant to run{money}.")
    return Condition(RULE, f"{RULE}/{account}/{d.instance_id}", account, d.instance_id,
                     summary, subject, d.started_at)


def _reasons(account: str, newest: dict[int, tuple]) -> dict[str, str]:
    """Why each instance listed in the newest snapshot is no longer down (if it is not)."""
    reasons = {}
    for instance_id, (intended, actual) in newest.items():
        key = f"{RULE}/{account}/{instance_id}"
        if intended != "running":
            reasons[key] = f"is no longer meant to run (intended status {intended})"
        elif actual == "running":
            reasons[key] = "is running again"
    return reasons
