"""Rules written once: the models and the alerts agree on scenarios built on the edges.

Each rule (the starting phase and "down", the idle threshold, an instance's latest
attributes, the interval cap and the freshness bound) has one definition that the models
and the alerts read. These tests put cases right on each rule's edge and check that every
reader gives the same answer, with the expected values worked out by hand in comments.
Real DuckDB over real Parquet in the storage layout; the alerts run as they do in
production (`evaluate_instance_down` from the history files, `evaluate_build_rules` over
the built warehouse).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.alerts.build_rules import evaluate_build_rules
from pipeline.alerts.history_rules import evaluate_instance_down
from pipeline.alerts.settings import BUILD_RULES, parse_alerts
from pipeline.storage.store import Store
from pipeline.warehouse import build as warehouse
from pipeline.warehouse.models import interval_cap_minutes
from pipeline.warehouse.quality import check_freshness
from pipeline.warehouse.query import open_read_only, query
from tests.support.sql_fixtures import RUN, at, every, instance_rows, write_history

CADENCE = 15


def _meant(actual: str | None) -> dict:
    return {"actual_status": actual, "intended_status": "running"}


def _scenarios() -> list[dict]:
    rows: list[dict] = []
    # lifecycle: six snapshots 10:00 .. 11:15 (the newest), every instance meant to run
    t = every("2024-04-01 10:00", 6)
    states = {
        # no status, created, then offline: offline is its first settled status, so it is
        # starting 10:00 and 10:15 and down from 10:30 on (an ongoing incident)
        11: [None, "created", "offline", "offline", "offline", "offline"],
        # never settles (NULL, loading, created are all starting statuses): never down
        12: [None, "loading", "loading", "loading", "loading", "created"],
        # settled by running, then loading after a restart: down from 10:30 on
        13: ["running", "running", "loading", "loading", "loading", "loading"],
        # created, running, no status twice (down 10:30-11:00), running, no status at the
        # newest snapshot: down there, since 11:15
        14: ["created", "running", None, None, "running", None],
    }
    for iid, statuses in states.items():
        rows += instance_rows("lifecycle", iid, t, [_meant(s) for s in statuses],
                              dph_base=1.0, storage_total_cost=0.1)
    # meant to be stopped: never starting, up or down whatever its status
    rows += instance_rows("lifecycle", 15, t, [{"actual_status": s, "intended_status": "stopped"}
                                               for s in [None, "created", "offline",
                                                         "offline", "exited", None]])

    # idle: five snapshots 10:00 .. 11:00, four intervals of 0.25 h, GPU at $1/h
    t = every("2024-04-01 10:00", 5)
    utils = {21: 0.05, 22: 5.0, 23: 0.0499, 24: 4.99, 25: None}  # 5.0 and 4.99 are percent
    for iid, util in utils.items():
        rows += instance_rows("idle", iid, t, [RUN] * 5, gpu_util=util, dph_base=1.0,
                              storage_total_cost=0.0, gpu_name="RTX 4090")
    rows += instance_rows("idle", 26, t, [{"actual_status": "exited",
                                           "intended_status": "stopped"}] * 5,
                          gpu_util=0.0, dph_base=1.0, storage_total_cost=0.0)
    rows += instance_rows("idle", 27, t, [_meant("frozen")] * 5, gpu_util=0.0, dph_base=2.0,
                          storage_total_cost=0.0)

    # names: instance 31 is idle throughout; on day 2 its first two snapshots report no
    # label, GPU, host or country, and its newest snapshot (which has no interval yet)
    # carries a new label and is_bid false
    day1 = every("2024-04-01 10:00", 2)
    day2 = every("2024-04-02 10:00", 3)
    full = {"label": "old", "gpu_name": "RTX 4090", "num_gpus": 2, "host_id": 70,
            "machine_id": 7, "geolocation": "Oslo, NO", "is_bid": True}
    blank = dict.fromkeys(full)
    rows += instance_rows("names", 31, day1 + day2,
                          [full, full, blank, blank, {"label": "new", "is_bid": False}],
                          **RUN, gpu_util=0.0, dph_base=1.0, storage_total_cost=0.0)
    return rows


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("rules")
    write_history(home, _scenarios())
    warehouse.build(home, cadence_minutes=CADENCE)
    return home


def _rows(home: Path, sql: str, params: list | None = None) -> list[dict]:
    result = query(home, sql, params=params)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def _build_rule_conditions(home: Path, rule: str, **thresholds: float) -> dict:
    """(account, instance_id) -> condition of one cost rule over the built warehouse."""
    settings = parse_alerts({**thresholds, "disabled": [r for r in BUILD_RULES if r != rule]},
                            {})
    con = open_read_only(home)
    try:
        evaluation = evaluate_build_rules(con, settings)
    finally:
        con.close()
    assert evaluation is not None
    return {(c.account, c.instance_id): c for c in evaluation.conditions}


# -- the starting phase and "down" --------------------------------------------------------


def test_starting_and_down_at_each_status_sequence(home: Path) -> None:
    states = _rows(home, "SELECT instance_id, snapshot_at, is_starting, is_up, is_down "
                         "FROM instance_states WHERE account = 'lifecycle' "
                         "ORDER BY instance_id, snapshot_at")
    flags = {}
    for s in states:
        flags.setdefault(s["instance_id"], []).append(
            "s" if s["is_starting"] else "u" if s["is_up"] else "d" if s["is_down"] else "-")
    assert flags == {11: list("ssdddd"), 12: list("ssssss"), 13: list("uudddd"),
                     14: list("suddud"), 15: list("------")}
    lifecycle = {r["instance_id"]: r for r in _rows(
        home, "SELECT * FROM instance_latest WHERE account = 'lifecycle'")}
    assert lifecycle[11]["first_settled_at"] == at("2024-04-01 10:30")  # offline
    assert lifecycle[12]["first_settled_at"] is None
    assert lifecycle[11]["first_running_at"] is None  # it never ran
    # the intervals carry the state at their start; the newest snapshot has none
    starting = _rows(home, "SELECT instance_id, starting_hours, down_hours "
                           "FROM reliability_alltime_by_instance WHERE account = 'lifecycle' "
                           "ORDER BY instance_id")
    assert [(r["instance_id"], r["starting_hours"], r["down_hours"]) for r in starting] == [
        (11, 0.5, 0.75), (12, 1.25, 0.0), (13, 0.0, 0.75), (14, 0.25, 0.5), (15, 0.0, 0.0)]


def test_the_instance_down_alert_and_the_models_agree_on_every_sequence(home: Path) -> None:
    evaluation = evaluate_instance_down(Store(home), "lifecycle", minutes=0.001)
    assert evaluation is not None
    alerted = {c.instance_id: c.started_at for c in evaluation.conditions}
    # by hand: 11 down since 10:30 (NULL -> created -> offline), 13 since 10:30 (loading
    # after running); 12 never settled; 14 down at the newest snapshot only (under a minute)
    assert alerted == {11: at("2024-04-01 10:30"), 13: at("2024-04-01 10:30")}
    assert {c.instance_id for c in evaluate_instance_down(
        Store(home), "lifecycle", minutes=0).conditions} == {11, 13, 14}
    # the models: down in the newest snapshot, and the ongoing incidents' starts
    newest = _rows(home, "SELECT instance_id FROM instance_states WHERE account = 'lifecycle' "
                         "AND snapshot_at = ? AND is_down ORDER BY 1", [at("2024-04-01 11:15")])
    assert [r["instance_id"] for r in newest] == [11, 13, 14]
    ongoing = _rows(home, "SELECT instance_id, started_at FROM incidents "
                          "WHERE account = 'lifecycle' AND is_ongoing")
    assert {r["instance_id"]: r["started_at"] for r in ongoing} == alerted
    # 14's earlier outage ended when it ran again at 11:00
    assert _rows(home, "SELECT started_at, hours, is_ongoing FROM incidents "
                       "WHERE account = 'lifecycle' AND instance_id = 14") == [
        {"started_at": at("2024-04-01 10:30"), "hours": 0.5, "is_ongoing": False}]


# -- the idle threshold -------------------------------------------------------------------


def test_idle_at_the_threshold_is_the_same_for_idle_spend_and_the_alert(home: Path) -> None:
    idle = {r["instance_id"]: r for r in _rows(
        home, "SELECT instance_id, idle_instance_hours, idle_gpu_cost FROM idle_spend "
              "WHERE account = 'idle'")}
    # exactly 5 % (0.05, or 5.0 as percent) is not idle, just under it is; unknown
    # utilisation is not idle; a stopped GPU is not billed, a frozen one is (at $2/h)
    assert {i: (r["idle_instance_hours"], r["idle_gpu_cost"]) for i, r in idle.items()
            if r["idle_instance_hours"]} == {23: (1.0, 1.0), 24: (1.0, 1.0), 27: (1.0, 2.0)}
    flags = _rows(home, "SELECT instance_id, bool_and(gpu_idle) AS idle FROM instance_intervals "
                        "WHERE account = 'idle' GROUP BY 1 ORDER BY 1")
    assert [r["instance_id"] for r in flags if r["idle"]] == [23, 24, 27]
    alerts = {iid: c for (account, iid), c in
              _build_rule_conditions(home, "idle_gpu", idle_gpu_hours=1).items()
              if account == "idle"}
    assert set(alerts) == {23, 24, 27}
    for iid, condition in alerts.items():  # the money the alert names is idle_spend's
        assert f"${idle[iid]['idle_gpu_cost']:,.2f} so far" in condition.summary
    assert "(at most 4.99 % utilisation)" in alerts[24].summary
    # over the threshold of hours: the run is exactly one hour, so 1.01 h fires nothing
    assert not [k for k in _build_rule_conditions(home, "idle_gpu", idle_gpu_hours=1.01)
                if k[0] == "idle"]


# -- an instance's latest attributes ------------------------------------------------------


def test_an_instance_is_named_by_its_latest_non_null_attributes_everywhere(home: Path) -> None:
    latest = _rows(home, "SELECT label, gpu_name, num_gpus, machine_id, host_id, country, "
                         "is_bid FROM instance_latest WHERE account = 'names'")
    # the newest snapshot's label and is_bid; the rest from day 1, the last that reported
    assert latest == [{"label": "new", "gpu_name": "RTX 4090", "num_gpus": 2, "machine_id": 7,
                       "host_id": 70, "country": "NO", "is_bid": False}]
    reliability = _rows(home, "SELECT label, gpu_name, num_gpus, machine_id, host_id, country "
                              "FROM reliability_alltime_by_instance WHERE account = 'names'")
    assert reliability == [{k: v for k, v in latest[0].items() if k != "is_bid"}]
    # the idle alert names the instance the same way, although its newest snapshot (the
    # only one with the new label) starts no interval
    alert = _build_rule_conditions(home, "idle_gpu", idle_gpu_hours=1)[("names", 31)]
    assert alert.subject == 'Instance 31 "new" (2x RTX 4090, host 70) of account names'
    # a day keeps what was seen that day (its intervals' last non-NULL values): day 2's
    # intervals reported nothing
    days = _rows(home, "SELECT day, label, gpu_name FROM instance_daily "
                       "WHERE account = 'names' ORDER BY day")
    assert [(d["label"], d["gpu_name"]) for d in days] == [("old", "RTX 4090"), (None, None)]


# -- the interval cap and the freshness bound ---------------------------------------------


def test_a_gap_exactly_at_the_cap_is_observed_and_fresh_and_a_minute_more_is_neither(
        tmp_path: Path) -> None:
    cap = interval_cap_minutes(CADENCE)
    assert cap == 30
    first = at("2024-04-01 10:00")
    times = [first, first + timedelta(minutes=cap), first + timedelta(minutes=2 * cap + 1)]
    write_history(tmp_path, instance_rows("cap", 41, times, [RUN] * 3, dph_base=1.0))
    warehouse.build(tmp_path, cadence_minutes=CADENCE)
    assert query(tmp_path, "SELECT cap_minutes FROM build_info").rows == [(cap,)]
    intervals = query(tmp_path, "SELECT next_snapshot_at - interval_start, hours, is_capped "
                                "FROM instance_intervals ORDER BY interval_start").rows
    # a gap of exactly the cap counts whole; one minute more is cut at the cap
    assert intervals == [(timedelta(minutes=cap), 0.5, False),
                         (timedelta(minutes=cap + 1), 0.5, True)]
    # the freshness check draws the line at the same place, after the newest snapshot
    for (gap, _hours, capped) in intervals:
        outcome = check_freshness(Store(tmp_path), cadence_minutes=CADENCE, now=times[-1] + gap)
        assert outcome.passed is not capped, (gap, outcome.detail)
