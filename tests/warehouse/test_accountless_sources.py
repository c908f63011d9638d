"""History of no account (the market's datasets) as warehouse sources.

The market datasets are registered without an `account` partition
(`pipeline.storage.datasets`); the warehouse must take them like the others: a
`{{ market_offers_glob }}` placeholder, an empty stand-in before the first file, their
fingerprints in the build state, the window of the daily models that read them, and the
tables an incremental build carries and updates in place. The real `sql/` models run
beside three test models over the market offers (a staging view, a daily model and a
table updated in place), on real Parquet written through `Store`; expected figures are
computed here from the rows written.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.storage.datasets import MARKET_FAMILY, family
from pipeline.storage.schema import MARKET_OFFER_SCHEMA, MARKET_SNAPSHOT_LOG_SCHEMA
from pipeline.storage.store import Store
from pipeline.warehouse.models import SQL_DIR, discover_models
from pipeline.warehouse.query import open_read_only
from pipeline.warehouse.window import daily_reads
from tests.support.s3_server import S3Server, running_server
from tests.support.sql_fixtures import RUN, every, instance_rows, write_history
from tests.support.warehouse import build_at_cadence, same_sources, snapshot_of_models

DAY1, DAY2, DAY3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
GPUS = {"RTX 4090": 0.40, "H100 SXM": 2.40}

# Two models over the market offers, beside the real ones: a staging view of the glob and
# a daily model (partitioned by account and day, as every daily model is).
ROWS_SQL = """-- accountless_rows: one row per market offer row (a test model). Grain: (snapshot_id,
-- offer_type, id).
-- materialized: view
select snapshot_date, * exclude (snapshot_date)
from read_parquet(
    '{{ market_offers_glob }}',
    hive_partitioning = true,
    hive_types = {'snapshot_date': date},
    union_by_name = {{ market_offers_union_by_name }}
)
"""
DAILY_SQL = """-- accountless_daily: per day and GPU model, the offers seen and their summed
-- price (a test model). Grain: (account, day, gpu_name).
-- materialized: daily
select 'market' as account, snapshot_date as day, gpu_name,
       count(*) as offers, sum(dph_total) as dph_total_sum
from accountless_rows
where snapshot_date between getvariable('build_from') and getvariable('build_to')
group by all
"""
# ... and a table updated in place from the first changed day of the market offers.
BY_SNAPSHOT_SQL = """-- accountless_by_snapshot: per market snapshot and GPU model, the offers
-- seen (a test model). Grain: (snapshot_id, gpu_name). A snapshot's rows change only
-- when its day's partition does.
-- materialized: table
-- incremental rows: snapshot_date >= getvariable('market_offers_changed_from')
-- incremental day: snapshot_date
select snapshot_date, snapshot_id, gpu_name, count(*) as offers
from accountless_rows
group by all
"""


@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    """The real models plus the three test models."""
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder)
    (folder / "accountless_rows.sql").write_text(ROWS_SQL, encoding="utf-8")
    (folder / "accountless_daily.sql").write_text(DAILY_SQL, encoding="utf-8")
    (folder / "accountless_by_snapshot.sql").write_text(BY_SNAPSHOT_SQL, encoding="utf-8")
    return folder


def _offers(day: date, snapshot: int) -> list[dict[str, object]]:
    """A few offers of one market snapshot; prices move with the day and the snapshot."""
    rows = []
    for n, (gpu, price) in enumerate(GPUS.items()):
        for k in range(2 + n + snapshot):
            rows.append({"id": 1000 * n + k, "gpu_name": gpu, "num_gpus": 1,
                         "dph_total": round(price + 0.01 * k + 0.001 * day.day, 6)})
    return rows


def write_market_snapshot(store: Store, day: date, snapshot: int) -> list[dict[str, object]]:
    """One market snapshot through the Store: its offers, then its log row (the family's
    commit record, written last), in partitions of no account. Returns the offers."""
    at = datetime.combine(day, time(6 + snapshot), tzinfo=UTC)
    snapshot_id = f"market-{day:%Y%m%d}-{snapshot}"
    offers = _offers(day, snapshot)
    columns = {f.name: [None] * len(offers) for f in MARKET_OFFER_SCHEMA}
    columns |= {key: [o[key] for o in offers] for key in offers[0]}
    columns |= {"snapshot_id": [snapshot_id] * len(offers), "snapshot_at": [at] * len(offers),
                "offer_type": ["on-demand"] * len(offers),
                "quarantined_values": [0] * len(offers)}
    offer_dir = store.partition_dir("market_offers", None, day)
    store.write_parquet_atomic(f"{offer_dir}/{snapshot_id}.parquet",
                               pa.table(columns, schema=MARKET_OFFER_SCHEMA))
    log = {f.name: [None] for f in MARKET_SNAPSHOT_LOG_SCHEMA}
    log |= {"snapshot_id": [snapshot_id], "snapshot_at": [at], "requests": [1],
            "offers": [len(offers)], "incomplete": [False], "quarantined_records": [0],
            "quarantined_values": [0], "schema_version": [1]}
    log_dir = store.partition_dir("market_snapshots", None, day)
    store.write_parquet_atomic(f"{log_dir}/{snapshot_id}.parquet",
                               pa.table(log, schema=MARKET_SNAPSHOT_LOG_SCHEMA))
    return [{**o, "day": day, "snapshot_id": snapshot_id} for o in offers]


def expected_daily(offers: list[dict[str, object]]) -> dict[tuple[date, str], tuple[int, float]]:
    """(day, gpu_name) -> (offers, summed dph_total), in plain Python."""
    out: dict[tuple[date, str], list[float]] = defaultdict(list)
    for o in offers:
        out[(o["day"], o["gpu_name"])].append(float(o["dph_total"]))  # type: ignore[arg-type]
    return {key: (len(v), round(sum(v), 6)) for key, v in out.items()}


def expected_by_snapshot(offers: list[dict[str, object]]) -> dict[tuple[str, str], int]:
    """(snapshot_id, gpu_name) -> offers, in plain Python."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for o in offers:
        out[(str(o["snapshot_id"]), str(o["gpu_name"]))] += 1
    return dict(out)


def by_snapshot_rows(home: Path | str) -> dict[tuple[str, str], int]:
    con = open_read_only(home)
    try:
        rows = con.execute("SELECT snapshot_id, gpu_name, offers "
                           "FROM accountless_by_snapshot").fetchall()
    finally:
        con.close()
    return {(r[0], r[1]): r[2] for r in rows}


def daily_rows(home: Path | str) -> dict[tuple[date, str], tuple[int, float]]:
    con = open_read_only(home)
    try:
        rows = con.execute("SELECT account, day, gpu_name, offers, dph_total_sum "
                           "FROM accountless_daily").fetchall()
    finally:
        con.close()
    assert {r[0] for r in rows} <= {"market"}
    return {(r[1], r[2]): (r[3], round(r[4], 6)) for r in rows}


def columns_of(home: Path, relation: str) -> list[str]:
    con = open_read_only(home)
    try:
        return [r[0] for r in con.execute(f"DESCRIBE {relation}").fetchall()]
    finally:
        con.close()


def write_fleet(home: Path, days: list[date]) -> None:
    """A small instance history (one account) on `days`, so the snapshot models have rows."""
    rows = []
    for day in days:
        rows += instance_rows("acct", 1, every(f"{day} 00:00", 96), [RUN] * 96,
                              dph_base=0.5, dph_total=0.55, num_gpus=1, gpu_name="RTX 4090")
    write_history(home, rows)


def test_a_build_reads_a_dataset_of_no_account(tmp_path: Path, sql_dir: Path) -> None:
    """Before any market file the view reads an empty stand-in of the same layout (no
    `account` column appears later); once written, the daily model holds its figures and
    the build state fingerprints the partitions under no account."""
    home = tmp_path / "home"
    write_fleet(home, [DAY1, DAY2])
    build_at_cadence(home, sql_dir=sql_dir)
    assert daily_rows(home) == {}
    empty_columns = columns_of(home, "accountless_rows")
    assert "account" not in empty_columns and "snapshot_date" in empty_columns

    store = Store(home)
    offers = write_market_snapshot(store, DAY1, 0) + write_market_snapshot(store, DAY2, 0)
    result = build_at_cadence(home, sql_dir=sql_dir)
    assert daily_rows(home) == expected_daily(offers)
    assert columns_of(home, "accountless_rows") == empty_columns
    assert result.window == (DAY1, DAY2)
    state = (home / "warehouse_state.json").read_text(encoding="utf-8")
    for spec in family(MARKET_FAMILY):
        assert spec.name in state


def test_a_new_day_of_no_account_recomputes_that_day_only(tmp_path: Path,
                                                          sql_dir: Path) -> None:
    """A market snapshot on a new day recomputes that day of the models that read the
    market, and no day of those that do not; the result equals a full build."""
    home = tmp_path / "home"
    write_fleet(home, [DAY1, DAY2])
    store = Store(home)
    offers = write_market_snapshot(store, DAY1, 0) + write_market_snapshot(store, DAY2, 0)
    build_at_cadence(home, sql_dir=sql_dir)

    offers += write_market_snapshot(store, DAY3, 0) + write_market_snapshot(store, DAY3, 1)
    result = build_at_cadence(home, sql_dir=sql_dir)
    assert not result.full and result.updated_in_place
    assert result.window == (DAY3, DAY3) and result.days_recomputed == 1
    day3 = {k: v for k, v in expected_daily(offers).items() if k[0] == DAY3}
    assert result.rows_written["accountless_daily"] == len(day3)
    for model in ("instance_intervals", "instance_daily", "instance_day_summary"):
        assert result.rows_written[model] == 0, model  # they read no market data
    assert daily_rows(home) == expected_daily(offers)
    # the table updated in place replaced the new day's rows only
    new_rows = {k for k in expected_by_snapshot(offers) if k[0].startswith("market-20261122")}
    assert result.rows_written["accountless_by_snapshot"] == len(new_rows)
    assert by_snapshot_rows(home) == expected_by_snapshot(offers)

    # a build with nothing new recomputes nothing
    again = build_at_cadence(home, sql_dir=sql_dir)
    assert again.window is None and again.days_recomputed == 0
    assert again.updated_in_place and again.rows_written["accountless_by_snapshot"] == 0

    full = same_sources(home, tmp_path / "full")
    assert build_at_cadence(full, sql_dir=sql_dir).full
    assert snapshot_of_models(home, sql_dir) == snapshot_of_models(full, sql_dir)


def test_a_rewritten_day_of_no_account_recomputes_from_that_day(tmp_path: Path,
                                                                sql_dir: Path) -> None:
    """A past market day rewritten (a second snapshot landed late) starts the window at
    that day itself: a market snapshot does not continue the one before, as an account's
    snapshot does; the newest day is recomputed too."""
    home = tmp_path / "home"
    write_fleet(home, [DAY1, DAY2, DAY3])
    store = Store(home)
    offers = [o for day in (DAY1, DAY2, DAY3) for o in write_market_snapshot(store, day, 0)]
    build_at_cadence(home, sql_dir=sql_dir)

    offers += write_market_snapshot(store, DAY2, 1)
    result = build_at_cadence(home, sql_dir=sql_dir)
    assert result.window == (DAY2, DAY3) and result.days_recomputed == 2
    assert daily_rows(home) == expected_daily(offers)
    assert by_snapshot_rows(home) == expected_by_snapshot(offers)
    full = same_sources(home, tmp_path / "full")
    build_at_cadence(full, sql_dir=sql_dir)
    assert snapshot_of_models(home, sql_dir) == snapshot_of_models(full, sql_dir)


def test_the_models_that_read_no_account_are_found_from_the_sql(sql_dir: Path) -> None:
    """Which daily model a market change recomputes comes from what its SQL reads (through
    the models it reads), widened to the dataset's family, not from a list of names."""
    reads = daily_reads(discover_models(sql_dir))
    market = tuple(sorted(d.name for d in family(MARKET_FAMILY)))
    assert reads["accountless_daily"] == market
    assert not set(market) & set(reads["instance_intervals"])


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_server() as server:
        yield server


def test_history_of_no_account_on_an_object_store(
        s3: S3Server, tmp_path: Path, sql_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same on an s3:// home (a real S3 server on 127.0.0.1), with market data only:
    the build takes it as its one source, and a new day recomputes that day only."""
    env = s3.env(VAST_PIPELINE_CACHE=str(tmp_path / "cache"))  # a fresh prefix
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = env["VAST_PIPELINE_HOME"]
    store = Store(home)
    offers = write_market_snapshot(store, DAY1, 0) + write_market_snapshot(store, DAY2, 0)
    assert build_at_cadence(home, sql_dir=sql_dir).window == (DAY1, DAY2)
    assert daily_rows(home) == expected_daily(offers)

    offers += write_market_snapshot(store, DAY3, 0)
    result = build_at_cadence(home, sql_dir=sql_dir)
    assert result.window == (DAY3, DAY3) and result.days_recomputed == 1
    assert daily_rows(home) == expected_daily(offers)
    assert by_snapshot_rows(home) == expected_by_snapshot(offers)
