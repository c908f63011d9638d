"""The exact semantics of issue 4, checked on hand-built scenarios with hand-computed numbers.

One warehouse is built (real DuckDB over real Parquet in the storage layout) with one
account per scenario, because each scenario needs its own snapshot timeline. Expected
values are worked out in the comments from the rules, never copied from the output.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipeline.warehouse.marts import check_marts
from pipeline.warehouse.query import query
from tests.support.sql_fixtures import RUN, STOPPED, at, every, instance_rows, write_history
from tests.support.warehouse import build_at_cadence

APPROX = {"rel": 1e-9, "abs": 1e-12}


def _scenarios() -> tuple[list[dict], list[tuple[str, object]]]:
    rows: list[dict] = []
    log: list[tuple[str, object]] = []

    # stop and restart: 7 snapshots 10:00..11:30, stopped 10:30 and 10:45.
    t = every("2024-03-01 10:00", 7)
    rows += instance_rows("stoprestart", 101, t, [RUN, RUN, STOPPED, STOPPED, RUN, RUN, RUN],
                          dph_base=2.0, storage_total_cost=0.2, gpu_util=90.0,
                          geolocation="Oslo, NO", label="train", gpu_name="RTX 4090",
                          num_gpus=2, machine_id=7, host_id=70, reliability2=0.99)

    # outage: 201 offline 10:15-10:45 and unknown 11:00; 202 offline at the end (ongoing).
    t = every("2024-03-01 10:00", 6)
    off = {"actual_status": "offline", "intended_status": "running"}
    unk = {"actual_status": "unknown", "intended_status": "running"}
    rows += instance_rows("outage", 201, t, [RUN, off, off, RUN, unk, RUN],
                          dph_base=1.0, storage_total_cost=0.4, host_id=90, machine_id=9,
                          gpu_name="A100", country_code="DE", reliability2=0.95)
    rows += instance_rows("outage", 202, t, [RUN, RUN, RUN, RUN, off, off],
                          dph_base=1.0, storage_total_cost=0.4, host_id=90, machine_id=9,
                          gpu_name="A100", country_code="DE", reliability2=0.90)

    # price change: 301 reprices at 10:30 (storage from search__disk_hour); 302's storage
    # comes from storage_cost ($/GB/month) * disk_space / 720.
    t = every("2024-03-01 10:00", 4)
    rows += instance_rows("price", 301, t, [{"dph_base": 1.0, "dph_total": 1.05},
                                            {"dph_base": 1.0, "dph_total": 1.05},
                                            {"dph_base": 1.5, "dph_total": 1.55},
                                            {"dph_base": 1.5, "dph_total": 1.55}],
                          **RUN, search__disk_hour=0.05, is_bid=True, label="bid")
    rows += instance_rows("price", 302, t, [{}] * 4, **RUN, dph_base=0.5, storage_cost=0.1,
                          disk_space=72.0)

    # destroyed: 401 last listed at 10:15; 402 listed until 10:30; 10:45 listed nobody.
    t = every("2024-03-01 10:00", 4)
    rows += instance_rows("destroyed", 401, t[:2], [RUN, RUN], dph_base=1.0,
                          storage_total_cost=0.1)
    rows += instance_rows("destroyed", 402, t[:3], [RUN, RUN, RUN], dph_base=2.0,
                          storage_total_cost=0.0)
    log.append(("destroyed", t[3]))

    # collection gap: snapshots 10:00, 10:15, then nothing until 11:30, 11:45.
    t = [at("2024-03-01 10:00"), at("2024-03-01 10:15"), at("2024-03-01 11:30"),
         at("2024-03-01 11:45")]
    rows += instance_rows("gap", 501, t, [RUN] * 4, dph_base=1.0, storage_total_cost=0.0)

    # across midnight: 23:30, 23:50, 00:10 (20-minute spacing, under the 30-minute cap).
    t = [at("2024-03-01 23:30"), at("2024-03-01 23:50"), at("2024-03-02 00:10")]
    rows += instance_rows("midnight", 601, t, [RUN] * 3, dph_base=3.0, storage_total_cost=0.3)

    # a price change at the first snapshot after midnight
    t = [at("2024-03-01 23:30"), at("2024-03-01 23:50"), at("2024-03-02 00:10")]
    rows += instance_rows("midnightprice", 602, t, [{"dph_base": 1.0}, {"dph_base": 1.0},
                                                    {"dph_base": 2.0}], **RUN)

    # starting phase: 701 created (status null), loading x2, running x2, exited while
    # intended running (down), running. 702 runs, is stopped, then restarts via 'loading'.
    t = every("2024-03-01 10:00", 7)
    load = {"actual_status": "loading", "intended_status": "running"}
    created = {"actual_status": None, "intended_status": "running"}
    exited = {"actual_status": "exited", "intended_status": "running"}
    rows += instance_rows("starting", 701, t, [created, load, load, RUN, RUN, exited, RUN],
                          dph_base=1.0, storage_total_cost=0.2)
    rows += instance_rows("starting", 702, t[:4], [RUN, STOPPED, load, RUN], dph_base=1.0,
                          storage_total_cost=0.0)

    # idle: 801 runs with gpu_util 0 and 2 (percent) then 50; 802 is stopped all along.
    t = every("2024-03-01 10:00", 4)
    rows += instance_rows("idle", 801, t, [{"gpu_util": 0.0}, {"gpu_util": 2.0},
                                           {"gpu_util": 50.0}, {"gpu_util": 60.0}],
                          **RUN, dph_base=4.0, dph_total=4.4, storage_total_cost=0.4,
                          num_gpus=4, credit_balance=100.0, label="idle-gpu")
    rows += instance_rows("idle", 802, t, [STOPPED] * 4, dph_base=1.0, dph_total=1.6,
                          storage_total_cost=0.6, num_gpus=1, credit_balance=100.0)

    # no credit left: the newest snapshot (10:15) reports a balance of -$3 while burning $2/h
    t = every("2024-03-01 10:00", 2)
    rows += instance_rows("broke", 1101, t, [RUN] * 2, dph_base=2.0, storage_total_cost=0.0,
                          credit_balance=-3.0)

    # NULL status at the end: 901 runs 23:45 and 00:00, then its status is NULL at 00:15 and
    # at 00:30, the account's newest snapshot. The day's last status is NULL, not 'running'.
    t = every("2024-03-01 23:45", 4)
    gone = {"actual_status": None, "intended_status": "running"}
    rows += instance_rows("nullstatus", 901, t, [RUN, RUN, gone, gone], dph_base=1.0,
                          storage_total_cost=0.1, label="null-end")

    # billing rules, one instance per case, the same state at 10:00 and 10:15 (newest)
    t = every("2024-03-01 10:00", 2)
    rows += instance_rows("billing", 1001, t, [{}] * 2, actual_status="frozen",
                          intended_status="running", dph_base=2.0, storage_total_cost=0.1)
    rows += instance_rows("billing", 1002, t, [{}] * 2, actual_status="offline",
                          intended_status="running", dph_base=2.0, search__disk_hour=0.3)
    rows += instance_rows("billing", 1003, t, [{}] * 2, actual_status=None,
                          intended_status="stopped", dph_base=2.0, storage_cost=0.2,
                          disk_space=36.0)
    rows += instance_rows("billing", 1004, t, [{}] * 2, actual_status="exited",
                          intended_status="stopped", dph_base=2.0, storage_total_cost=0.5,
                          search__disk_hour=9.0, storage_cost=9.0, disk_space=9.0)
    return rows, log


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("semantics")
    rows, log = _scenarios()
    write_history(home, rows, log)
    build_at_cadence(home)
    return home


def one(home: Path, sql: str, params: list | None = None) -> dict:
    result = query(home, sql, params=params)
    assert len(result.rows) == 1, result.rows
    return dict(zip(result.columns, result.rows[0], strict=True))


def rows_of(home: Path, sql: str, params: list | None = None) -> list[dict]:
    result = query(home, sql, params=params)
    return [dict(zip(result.columns, r, strict=True)) for r in result.rows]


def costs(home: Path, account: str, instance_id: int) -> dict:
    return one(home, "SELECT sum(gpu_cost) AS gpu, sum(storage_cost) AS storage, "
               "sum(total_cost) AS total, sum(hours) AS hours, count(*) AS n "
               "FROM instance_intervals WHERE account = ? AND instance_id = ?",
               [account, instance_id])


def reliability(home: Path, account: str, instance_id: int) -> dict:
    return one(home, "SELECT * FROM reliability_alltime_by_instance WHERE account = ? "
               "AND instance_id = ?", [account, instance_id])


def test_stop_and_restart_costs(home: Path) -> None:
    # 6 intervals of 0.25 h; GPU billed in 4 (1 h x $2), storage in all 6 (1.5 h x $0.2)
    c = costs(home, "stoprestart", 101)
    assert c["n"] == 6
    assert c["hours"] == pytest.approx(1.5, **APPROX)
    assert c["gpu"] == pytest.approx(2.0, **APPROX)
    assert c["storage"] == pytest.approx(0.3, **APPROX)
    assert c["total"] == pytest.approx(2.3, **APPROX)
    d = one(home, "SELECT * FROM estimated_cost_daily WHERE account = 'stoprestart'")
    assert d["instance_hours"] == pytest.approx(1.0, **APPROX)
    assert d["gpu_hours"] == pytest.approx(2.0, **APPROX)  # x 2 GPUs
    assert d["cost_per_gpu_hour"] == pytest.approx(2.3 / 2.0, **APPROX)
    assert d["country"] == "NO"  # after the last comma of geolocation


def test_stop_and_restart_reliability_ignores_stopped_time(home: Path) -> None:
    r = reliability(home, "stoprestart", 101)
    assert r["up_hours"] == pytest.approx(1.0, **APPROX)  # stopped 0.5 h is not counted
    assert r["down_hours"] == 0
    assert r["availability"] == 1.0
    assert r["incidents"] == 0
    assert r["mtbf_hours"] is None and r["mttr_hours"] is None
    assert r["coverage"] == pytest.approx(1.0, **APPROX)
    assert r["window_hours"] == pytest.approx(1.5, **APPROX)


def test_outage_is_down_and_offline_storage_free(home: Path) -> None:
    # 201: running .25 (gpu .25, storage .1), offline .5 (nothing), running .25 (.25, .1),
    # unknown .25 (storage .1 only)
    c = costs(home, "outage", 201)
    assert c["gpu"] == pytest.approx(0.5, **APPROX)
    assert c["storage"] == pytest.approx(0.3, **APPROX)
    r = reliability(home, "outage", 201)
    assert r["up_hours"] == pytest.approx(0.5, **APPROX)
    assert r["down_hours"] == pytest.approx(0.75, **APPROX)
    assert r["availability"] == pytest.approx(0.4, **APPROX)
    assert r["incidents"] == 2
    assert r["mttr_hours"] == pytest.approx(0.375, **APPROX)  # (0.5 + 0.25) / 2
    assert r["mtbf_hours"] == pytest.approx(0.25, **APPROX)  # 0.5 up / 2
    assert r["reliability2_last"] == 0.95


def test_outage_incidents_rows(home: Path) -> None:
    inc = rows_of(home, "SELECT * FROM incidents WHERE account = 'outage' "
                  "ORDER BY instance_id, started_at")
    assert [(i["instance_id"], i["started_at"], i["ended_at"], i["hours"], i["statuses"],
             i["is_ongoing"]) for i in inc] == [
        (201, at("2024-03-01 10:15"), at("2024-03-01 10:45"), 0.5, ["offline"], False),
        (201, at("2024-03-01 11:00"), at("2024-03-01 11:15"), 0.25, ["unknown"], False),
        # still offline in the account's newest snapshot: ongoing
        (202, at("2024-03-01 11:00"), at("2024-03-01 11:15"), 0.25, ["offline"], True),
    ]
    host = one(home, "SELECT * FROM reliability_alltime_by_host WHERE account = 'outage'")
    # up: 0.5 + 1.0; down: 0.75 + 0.25; incidents 3 of 1.0 h in all
    assert host["instances"] == 2
    assert host["availability"] == pytest.approx(1.5 / 2.5, **APPROX)
    assert host["incidents"] == 3
    assert host["mttr_hours"] == pytest.approx(1.0 / 3, **APPROX)
    assert host["mtbf_hours"] == pytest.approx(1.5 / 3, **APPROX)
    assert host["reliability2_min"] == 0.90
    # both members are first and last seen at the same snapshots: the tie takes the lowest
    assert (host["reliability2_first"], host["reliability2_last"]) == (0.90, 0.90)
    gpu = one(home, "SELECT * FROM reliability_alltime_by_gpu WHERE account = 'outage'")
    assert gpu["gpu_name"] == "A100" and gpu["incidents"] == 3
    country = one(home, "SELECT * FROM reliability_alltime_by_country WHERE account = 'outage'")
    assert country["country"] == "DE"
    machine = one(home, "SELECT * FROM reliability_alltime_by_machine WHERE account = 'outage'")
    assert (machine["machine_id"], machine["host_id"]) == (9, 90)
    daily = one(home, "SELECT sum(incidents_started) AS n, sum(incident_hours_started) AS h "
                "FROM reliability_daily WHERE account = 'outage'")
    assert daily == {"n": 3, "h": pytest.approx(1.0, **APPROX)}


def test_price_change_uses_rate_at_interval_start(home: Path) -> None:
    # 301: .25 h at $1 + .25 h at $1 + .25 h at $1.5 = .875; storage .05 $/h x .75 h
    c = costs(home, "price", 301)
    assert c["gpu"] == pytest.approx(0.875, **APPROX)
    assert c["storage"] == pytest.approx(0.0375, **APPROX)
    changes = rows_of(home, "SELECT * FROM price_changes WHERE account = 'price'")
    assert len(changes) == 1
    ch = changes[0]
    assert ch["instance_id"] == 301 and ch["changed_at"] == at("2024-03-01 10:30")
    assert ch["previous_snapshot_at"] == at("2024-03-01 10:15")
    assert (ch["dph_base_before"], ch["dph_base_after"]) == (1.0, 1.5)
    assert (ch["dph_total_before"], ch["dph_total_after"]) == (1.05, 1.55)
    assert ch["change_pct"] == pytest.approx(0.5 / 1.05 * 100, **APPROX)
    assert ch["is_bid"] is True and ch["label"] == "bid" and ch["day"] == date(2024, 3, 1)


def test_price_change_across_midnight(home: Path) -> None:
    changes = rows_of(home, "SELECT * FROM price_changes WHERE account = 'midnightprice'")
    assert [(c["day"], c["changed_at"], c["previous_snapshot_at"], c["dph_base_before"],
             c["dph_base_after"], c["change_pct"]) for c in changes] == [
        (date(2024, 3, 2), at("2024-03-02 00:10"), at("2024-03-01 23:50"), 1.0, 2.0, None)]


def test_storage_rate_from_storage_cost_per_gb_month(home: Path) -> None:
    # 0.1 $/GB/month x 72 GB / 720 h = 0.01 $/h, over 3 intervals of .25 h
    c = costs(home, "price", 302)
    assert c["storage"] == pytest.approx(0.0075, **APPROX)
    assert c["gpu"] == pytest.approx(0.375, **APPROX)


def test_destroyed_instance_ends_at_next_account_snapshot(home: Path) -> None:
    ivs = rows_of(home, "SELECT interval_start, interval_end, hours FROM instance_intervals "
                  "WHERE account = 'destroyed' AND instance_id = 401 ORDER BY 1")
    assert [(i["interval_start"], i["interval_end"]) for i in ivs] == [
        (at("2024-03-01 10:00"), at("2024-03-01 10:15")),
        (at("2024-03-01 10:15"), at("2024-03-01 10:30")),  # 10:30 no longer lists it
    ]
    assert costs(home, "destroyed", 401)["total"] == pytest.approx(0.5 + 0.05, **APPROX)
    # 402's last interval ends at 10:45, a snapshot that listed no instance at all
    assert costs(home, "destroyed", 402)["gpu"] == pytest.approx(1.5, **APPROX)
    r = reliability(home, "destroyed", 401)
    assert r["last_seen"] == at("2024-03-01 10:15")
    assert r["window_hours"] == pytest.approx(0.5, **APPROX)
    assert r["coverage"] == pytest.approx(1.0, **APPROX)
    # the newest snapshot listed nobody: nothing burns now
    assert rows_of(home, "SELECT * FROM fleet_now WHERE account = 'destroyed'") == []


def test_newest_snapshot_has_no_interval(home: Path) -> None:
    last = one(home, "SELECT max(interval_start) AS s FROM instance_intervals "
               "WHERE account = 'stoprestart'")
    assert last["s"] == at("2024-03-01 11:15")


def test_gap_past_cap_is_capped_and_lowers_coverage(home: Path) -> None:
    ivs = rows_of(home, "SELECT interval_start, interval_end, next_snapshot_at, hours, "
                  "is_capped FROM instance_intervals WHERE account = 'gap' ORDER BY 1")
    assert [(i["interval_end"], i["hours"], i["is_capped"]) for i in ivs] == [
        (at("2024-03-01 10:15"), 0.25, False),
        (at("2024-03-01 10:45"), 0.5, True),  # next snapshot 11:30, capped at 2 x 15 min
        (at("2024-03-01 11:45"), 0.25, False),
    ]
    assert ivs[1]["next_snapshot_at"] == at("2024-03-01 11:30")
    r = reliability(home, "gap", 501)
    assert r["observed_hours"] == pytest.approx(1.0, **APPROX)
    assert r["window_hours"] == pytest.approx(1.75, **APPROX)
    assert r["coverage"] == pytest.approx(1.0 / 1.75, **APPROX)
    assert r["availability"] == 1.0
    assert costs(home, "gap", 501)["gpu"] == pytest.approx(1.0, **APPROX)


def test_interval_across_midnight_is_split_proportionally(home: Path) -> None:
    days = rows_of(home, "SELECT day, observed_hours, gpu_cost, storage_cost, total_cost "
                   "FROM estimated_cost_daily WHERE account = 'midnight' ORDER BY day")
    # 23:30-23:50 (1/3 h) + 23:50-24:00 (1/6 h) on day 1; 00:00-00:10 (1/6 h) on day 2
    assert [d["day"] for d in days] == [date(2024, 3, 1), date(2024, 3, 2)]
    assert days[0]["observed_hours"] == pytest.approx(0.5, **APPROX)
    assert days[0]["gpu_cost"] == pytest.approx(1.5, **APPROX)
    assert days[0]["total_cost"] == pytest.approx(1.65, **APPROX)
    assert days[1]["observed_hours"] == pytest.approx(1 / 6, **APPROX)
    assert days[1]["gpu_cost"] == pytest.approx(0.5, **APPROX)
    assert days[1]["storage_cost"] == pytest.approx(0.05, **APPROX)
    iv = costs(home, "midnight", 601)
    assert iv["total"] == pytest.approx(days[0]["total_cost"] + days[1]["total_cost"], **APPROX)
    assert iv["total"] == pytest.approx(2.2, **APPROX)


def test_starting_phase_is_time_to_running_not_availability(home: Path) -> None:
    r = reliability(home, "starting", 701)
    # null, loading, loading: 0.75 h starting; running x2: 0.5 up; exited: 0.25 down
    assert r["starting_hours"] == pytest.approx(0.75, **APPROX)
    assert r["up_hours"] == pytest.approx(0.5, **APPROX)
    assert r["down_hours"] == pytest.approx(0.25, **APPROX)
    assert r["availability"] == pytest.approx(2 / 3, **APPROX)
    assert r["incidents"] == 1 and r["mttr_hours"] == pytest.approx(0.25, **APPROX)
    assert r["first_running_at"] == at("2024-03-01 10:45")
    c = costs(home, "starting", 701)
    assert c["gpu"] == pytest.approx(0.5, **APPROX)  # GPU billed only while running
    assert c["storage"] == pytest.approx(6 * 0.25 * 0.2, **APPROX)  # null status still billed


def test_starting_phase_happens_once_per_instance(home: Path) -> None:
    # the rule: starting runs from the first snapshot until first seen running; a later
    # 'loading' after a restart is down time (the instance was meant to run)
    # 702: running 10:00, stopped 10:15 (not counted), loading 10:30 (down), running 10:45
    # (its last snapshot: the interval runs to the account's next snapshot at 11:00)
    r = reliability(home, "starting", 702)
    assert r["starting_hours"] == 0
    assert r["up_hours"] == pytest.approx(0.5, **APPROX)
    assert r["down_hours"] == pytest.approx(0.25, **APPROX)
    assert r["incidents"] == 1


def test_idle_spend(home: Path) -> None:
    idle = rows_of(home, "SELECT * FROM idle_spend WHERE account = 'idle' ORDER BY instance_id")
    assert [i["instance_id"] for i in idle] == [801, 802]
    gpu, stopped = idle
    # util 0 and 2 % are idle (< 5 %), 50 % is not: 0.5 h x $4
    assert gpu["idle_instance_hours"] == pytest.approx(0.5, **APPROX)
    assert gpu["idle_gpu_cost"] == pytest.approx(2.0, **APPROX)
    assert gpu["stopped_storage_cost"] == 0
    # stopped all along: 0.75 h of storage at $0.6
    assert stopped["stopped_storage_hours"] == pytest.approx(0.75, **APPROX)
    assert stopped["stopped_storage_cost"] == pytest.approx(0.45, **APPROX)
    assert stopped["idle_cost"] == pytest.approx(0.45, **APPROX)
    # instances with no idle time have no row
    assert rows_of(home, "SELECT * FROM idle_spend WHERE account = 'midnight'") == []


def test_fleet_now_burn_rate(home: Path) -> None:
    fleet = rows_of(home, "SELECT * FROM fleet_now WHERE account = 'idle' ORDER BY instance_id")
    assert [f["snapshot_at"] for f in fleet] == [at("2024-03-01 10:45")] * 2
    running, stopped = fleet
    assert running["burn_rate_per_hour"] == pytest.approx(4.4, **APPROX)  # GPU 4 + storage .4
    assert running["gpu_burn_rate_per_hour"] == pytest.approx(4.0, **APPROX)
    assert running["storage_burn_rate_per_hour"] == pytest.approx(0.4, **APPROX)
    assert running["gpu_util_fraction"] == pytest.approx(0.6, **APPROX)
    assert stopped["burn_rate_per_hour"] == pytest.approx(0.6, **APPROX)  # storage only
    # the account's figures are account_now's: no instance row repeats the balance, and no
    # per-day or per-month copy of the burn rate sits beside the account's own
    for column in ("credit_balance", "burn_per_day", "burn_per_month"):
        assert column not in running


def test_account_now_has_one_row_per_account_with_its_credit_burn_and_runway(
        home: Path) -> None:
    idle = one(home, "SELECT * FROM account_now WHERE account = 'idle'")
    # newest snapshot 10:45: 801 runs (4 GPUs, $4 GPU + $.4 storage), 802 is stopped ($.6)
    assert idle["snapshot_at"] == at("2024-03-01 10:45")
    assert (idle["instances_listed"], idle["instances_running"], idle["gpus_running"]) == \
        (2, 1, 4)
    assert idle["credit_balance"] == 100.0  # once, though both instance rows carry it
    assert idle["burn_rate_per_hour"] == pytest.approx(5.0, **APPROX)
    assert idle["gpu_burn_rate_per_hour"] == pytest.approx(4.0, **APPROX)
    assert idle["storage_burn_rate_per_hour"] == pytest.approx(1.0, **APPROX)
    assert idle["burn_per_day"] == pytest.approx(120.0, **APPROX)
    assert idle["burn_per_month"] == pytest.approx(3650.0, **APPROX)
    # $100 at $5/h: 20 hours, out at 06:45 the next day
    assert idle["runway_hours"] == pytest.approx(20.0, **APPROX)
    assert idle["runway_days"] == pytest.approx(20.0 / 24, **APPROX)
    assert idle["credit_runs_out_at"] == at("2024-03-02 06:45")
    # the newest snapshot (10:45) listed nobody: nothing burns, the credit is unknown
    gone = one(home, "SELECT * FROM account_now WHERE account = 'destroyed'")
    assert gone["snapshot_at"] == at("2024-03-01 10:45")
    assert (gone["instances_listed"], gone["instances_running"], gone["gpus_running"]) == \
        (0, 0, 0)
    assert gone["burn_rate_per_hour"] == 0 and gone["burn_per_month"] == 0
    assert (gone["credit_balance"], gone["runway_hours"], gone["runway_days"],
            gone["credit_runs_out_at"]) == (None, None, None, None)
    # burning with no balance reported: no runway rather than a guess
    billing = one(home, "SELECT * FROM account_now WHERE account = 'billing'")
    assert billing["burn_rate_per_hour"] > 0 and billing["credit_balance"] is None
    assert billing["runway_hours"] is None
    # a negative balance has no runway left, not a negative one
    broke = one(home, "SELECT * FROM account_now WHERE account = 'broke'")
    assert broke["credit_balance"] == -3.0 and broke["runway_hours"] == 0
    assert broke["credit_runs_out_at"] == at("2024-03-01 10:15")
    # one row per account that has a snapshot; its burn rate is its fleet_now rows' sum
    sums = dict(query(home, "SELECT account, sum(burn_rate_per_hour) FROM fleet_now "
                            "GROUP BY account").rows)
    accounts = rows_of(home, "SELECT account, burn_rate_per_hour FROM account_now")
    assert sorted(a["account"] for a in accounts) == sorted(
        r[0] for r in query(home, "SELECT DISTINCT account FROM snapshots").rows)
    for a in accounts:
        assert a["burn_rate_per_hour"] == pytest.approx(sums.get(a["account"], 0), **APPROX)


def test_null_status_in_the_newest_snapshot_is_an_ongoing_incident(home: Path) -> None:
    # the status columns keep a NULL last value (max_by would skip it and say 'running')
    days = rows_of(home, "SELECT day, last_actual_status, last_intended_status "
                   "FROM instance_day_summary WHERE account = 'nullstatus' ORDER BY day")
    assert [(d["day"], d["last_actual_status"], d["last_intended_status"]) for d in days] == [
        (date(2024, 3, 1), "running", "running"),
        (date(2024, 3, 2), None, "running"),  # running 00:00, then NULL 00:15 and 00:30
    ]
    inc = rows_of(home, "SELECT * FROM incidents WHERE account = 'nullstatus'")
    # down from 00:15 (NULL after running) to 00:30, still NULL in the newest snapshot
    assert [(i["instance_id"], i["started_at"], i["ended_at"], i["hours"], i["statuses"],
             i["is_ongoing"]) for i in inc] == [
        (901, at("2024-03-02 00:15"), at("2024-03-02 00:30"), 0.25, ["(none)"], True)]
    assert reliability(home, "nullstatus", 901)["label"] == "null-end"


@pytest.mark.parametrize(("instance_id", "gpu", "storage"), [
    (1001, 2.0, 0.1),   # frozen: GPU and storage billed, storage_total_cost
    (1002, 0.0, 0.0),   # offline: nothing billed (storage would be search__disk_hour .3)
    (1003, 0.0, 0.01),  # NULL status: storage billed, 0.2 $/GB/month x 36 GB / 720
    (1004, 0.0, 0.5),   # exited: storage_total_cost wins over the other two sources
])
def test_billing_rules_agree_in_intervals_and_fleet_now(home: Path, instance_id: int,
                                                        gpu: float, storage: float) -> None:
    # one interval of .25 h at 10:00; the 10:15 snapshot (same state) is fleet_now
    c = costs(home, "billing", instance_id)
    assert c["n"] == 1 and c["hours"] == pytest.approx(0.25, **APPROX)
    assert c["gpu"] == pytest.approx(gpu * 0.25, **APPROX)
    assert c["storage"] == pytest.approx(storage * 0.25, **APPROX)
    now = one(home, "SELECT * FROM fleet_now WHERE account = 'billing' AND instance_id = ?",
              [instance_id])
    assert now["burn_rate_per_hour"] == pytest.approx(gpu + storage, **APPROX)
    assert now["snapshot_at"] == at("2024-03-01 10:15")
    rules = one(home, "SELECT storage_rate, gpu_billed, storage_billed FROM instance_snapshots "
                "WHERE account = 'billing' AND instance_id = ? AND snapshot_at = ?",
                [instance_id, at("2024-03-01 10:15")])
    assert rules["gpu_billed"] is (gpu > 0)
    assert rules["storage_billed"] is (instance_id != 1002)


def test_marts_checks_pass(home: Path) -> None:
    outcomes = check_marts(home)
    assert {o.name for o in outcomes} >= {"costs_non_negative", "availability_in_range",
                                          "cost_daily_equals_intervals"}
    assert all(o.passed for o in outcomes), outcomes


def test_cost_daily_sums_to_intervals_per_account(home: Path) -> None:
    per = rows_of(home, "SELECT i.account, i.total, d.total AS daily FROM "
                  "(SELECT account, sum(total_cost) AS total FROM instance_intervals GROUP BY 1) i "
                  "JOIN (SELECT account, sum(total_cost) AS total FROM estimated_cost_daily "
                  "GROUP BY 1) d "
                  "USING (account)")
    assert len(per) == 12  # every scenario account: each has intervals
    for p in per:
        assert p["daily"] == pytest.approx(p["total"], **APPROX)
