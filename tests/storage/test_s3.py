"""`VAST_PIPELINE_HOME=s3://bucket/prefix`, proven against a real S3 server on 127.0.0.1.

moto runs as an S3-compatible service in its own process (see `s3_server.py`), with
authentication on; the pipeline talks to it over HTTP exactly as to AWS, MinIO or R2.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipeline.core.errors import ConfigError
from pipeline.demo import DemoWindow, backfill
from pipeline.landing.history import DayResult, day_path, land_pending
from pipeline.landing.raw import RawSnapshot, read_snapshot, write_snapshot
from pipeline.sim.fleet import FleetModel
from pipeline.storage.objectstore import WriteConflict
from pipeline.storage.store import Store
from tests.support.cli import assert_one_sentence_error
from tests.support.s3_server import (
    BUCKET,
    S3Server,
    running_server,
    start_store_without_conditional_writes,
)
from tests.support.warehouse import build_at_cadence


def _window(first: datetime, last: datetime) -> DemoWindow:
    """A demo window of 15-minute snapshots."""
    return DemoWindow(first=first, last=last, step=timedelta(minutes=15))


def _land(store: Store, snapshot: RawSnapshot | str) -> DayResult:
    """Write a raw snapshot (unless given its raw file) and land its day, as collect does."""
    path = snapshot if isinstance(snapshot, str) else write_snapshot(store, snapshot)
    landed = read_snapshot(store, path)
    return land_pending(store, landed.account, landed.day)


# Crosses one UTC midnight: two day partitions, 33 snapshots of a small fleet.
WINDOW = _window(datetime(2026, 11, 20, 20, 0, tzinfo=UTC),
                 datetime(2026, 11, 21, 4, 0, tzinfo=UTC))
DAY = date(2026, 11, 21)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_server() as server:
        yield server


@pytest.fixture
def s3_env(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh s3:// home (its own prefix) and a local cache, set in this process too."""
    env = s3.env(VAST_PIPELINE_CACHE=str(tmp_path / "cache"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _prefix(env: dict[str, str]) -> str:
    return env["VAST_PIPELINE_HOME"].removeprefix(f"s3://{BUCKET}/")


def run_cli(*args: str, env: dict[str, str], cwd: Path,
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("VAST_", "DAGSTER_", "AWS_"))}
    clean.update(env)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=clean,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def _outputs(env: dict[str, str], out: Path) -> dict[str, str]:
    """Run rebuild, build, sql, report and export on one home; their results as text."""
    out.mkdir()
    texts: dict[str, str] = {}
    for name, args in {
        "charges": ("charges", "--from", "2026-11-20", "--to", "2026-11-21"),
        "rebuild": ("rebuild",),
        "build": ("build", "--full"),
        "sql": ("sql", "--format", "csv",
                "select account, day, round(total_cost, 9) as cost, round(gpu_hours, 9) "
                "as gpu_hours from estimated_cost_daily order by all"),
        "bills": ("sql", "--format", "csv",
                  "select * exclude (fetch_id, fetched_at) from billed_daily order by all"),
        "intervals": ("sql", "--format", "csv",
                      "select count(*), round(sum(total_cost), 9) from instance_intervals"),
        "report": ("report", "cost", "--from", "2026-11-20", "--to", "2026-11-21",
                   "--format", "csv", "--out", str(out / "reports")),
        "export": ("export", "focus", "--from", "2026-11-20", "--to", "2026-11-21",
                   "--out", str(out / "focus.csv")),
    }.items():
        result = run_cli(*args, env=env, cwd=out)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        texts[name] = result.stdout.replace(str(out), "OUT")
    for file in sorted((out / "reports").iterdir()):
        texts[file.name] = file.read_text(encoding="utf-8")
    texts["focus.csv"] = (out / "focus.csv").read_text(encoding="utf-8")
    return texts


def _assert_same(a: str, b: str, name: str) -> None:
    """Equal text, but for the last bits of floats (DuckDB sums in parallel, in any order)."""
    rows_a, rows_b = list(csv.reader(io.StringIO(a))), list(csv.reader(io.StringIO(b)))
    assert len(rows_a) == len(rows_b), name
    for row_a, row_b in zip(rows_a, rows_b, strict=True):
        assert len(row_a) == len(row_b), name
        for x, y in zip(row_a, row_b, strict=True):
            try:
                assert float(x) == pytest.approx(float(y), rel=1e-12, abs=1e-12), name
            except ValueError:
                assert x == y, name


def test_rebuild_build_sql_report_export_on_s3_match_a_local_disk(
        s3: S3Server, s3_env: dict[str, str], tmp_path: Path) -> None:
    fleet_args = {"seed": 11, "size": 6}
    local = tmp_path / "local"
    backfill(Store(local), FleetModel(**fleet_args), WINDOW)
    backfill(Store(s3_env["VAST_PIPELINE_HOME"]), FleetModel(**fleet_args), WINDOW)

    on_s3 = _outputs(s3_env, tmp_path / "out-s3")
    on_disk = _outputs({"VAST_PIPELINE_HOME": str(local)}, tmp_path / "out-local")
    assert on_s3.keys() == on_disk.keys()
    for name in on_s3:
        if name in ("build",):  # names its own warehouse path and timing
            continue
        _assert_same(on_s3[name].replace(s3_env["VAST_PIPELINE_HOME"], "HOME"),
                     on_disk[name].replace(str(local), "HOME"), name)
    assert "33 raw snapshots" in on_s3["rebuild"]
    assert on_s3["bills"].count("\n") >= 3  # a header and both days' bills
    assert {line.split(",")[1] for line in on_s3["sql"].splitlines()[1:] if line} == {
        "2026-11-20", "2026-11-21"}

    keys = s3.keys(_prefix(s3_env))
    # The warehouse file is local; the model Parquet is on the store for other engines.
    assert (tmp_path / "cache" / "warehouse.duckdb").is_file()
    assert not any(k.endswith(".duckdb") for k in keys)
    days = {k.split("/")[-2] for k in keys if "/parquet/models/instance_intervals/" in k}
    assert days == {"day=2026-11-20", "day=2026-11-21"}
    assert not any("_locks/" in k or "_tmp-" in k for k in keys)  # leases released
    assert not any(s3.secret_key in k or s3.access_key in k for k in keys)


def test_collect_and_charges_land_on_s3_and_status_reads_them(
        s3: S3Server, s3_env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli("collect", env=s3_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "check unique_instance_snapshot: passed" in result.stdout
    assert "check fresh_snapshots: passed" in result.stdout
    assert "were not evaluated" not in result.stderr  # instance_down read its s3:// files
    keys = s3.keys(_prefix(s3_env))
    assert sum(k.endswith(".ndjson.zst") for k in keys) == 1
    assert f"{_prefix(s3_env)}/alerts/state.json" in keys  # alerts evaluated on S3 too
    assert sum(k.endswith("/part-0.parquet") and "/parquet/snapshots/" in k for k in keys) == 1
    bills = run_cli("charges", env=s3_env, cwd=tmp_path)  # today and the two days before
    assert bills.returncode == 0, bills.stderr
    keys = s3.keys(_prefix(s3_env))
    assert sum("/parquet/billed_days/" in k for k in keys) == 3
    assert sum(k.startswith(f"{_prefix(s3_env)}/raw_charges/") for k in keys) == 3
    rebuilt = run_cli("rebuild", env=s3_env, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert s3.keys(_prefix(s3_env)) == keys  # the same objects, nothing added
    status = run_cli("status", env=s3_env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "newest snapshot: " in status.stdout
    # No credential in any object's name, user metadata or in what the commands printed.
    client = s3.client()
    for key in s3.keys(_prefix(s3_env)):
        meta = client.head_object(Bucket=BUCKET, Key=key)["Metadata"]
        text = key + repr(meta)
        assert s3.secret_key not in text and s3.access_key not in text
    for out in (result, bills, rebuilt, status):
        assert s3.secret_key not in out.stdout + out.stderr
        assert s3.access_key not in out.stdout + out.stderr
    # Dagster's instance is machine-local (the cache), never on the object store.
    assert (tmp_path / "cache" / "dagster" / "dagster.yaml").is_file()
    assert not any("/dagster/" in k for k in keys)


@pytest.mark.parametrize("overrides", [
    {"AWS_SECRET_ACCESS_KEY": "not-the-secret-0123456789"},
    {"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000"},
])
def test_a_refused_credential_is_one_sentence(
        s3_env: dict[str, str], tmp_path: Path, overrides: dict[str, str]) -> None:
    for args in (("status",), ("rebuild",), ("collect",), ("charges",), ("sql", "select 1")):
        result = run_cli(*args, env={**s3_env, **overrides}, cwd=tmp_path)
        assert_one_sentence_error(result, "refused the credentials", "AWS_SECRET_ACCESS_KEY")
        assert "not-the-secret" not in result.stderr + result.stdout


def test_a_missing_bucket_is_one_sentence(s3_env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli("status", env={**s3_env, "VAST_PIPELINE_HOME": "s3://no-such-bucket/x"},
                     cwd=tmp_path)
    assert_one_sentence_error(result, "Bucket no-such-bucket does not exist")


def test_credentials_in_the_home_uri_are_refused(s3_env: dict[str, str], tmp_path: Path) -> None:
    home = s3_env["VAST_PIPELINE_HOME"].replace("s3://", "s3://AKIAX:topsecret@")
    result = run_cli("status", env={**s3_env, "VAST_PIPELINE_HOME": home}, cwd=tmp_path)
    assert_one_sentence_error(result, "AWS_* variables")
    assert "topsecret" not in result.stderr + result.stdout


_SLOW_WRITER = """
import sys, time
from pipeline.storage.store import Store
store = Store(sys.argv[1])
path = store.path("raw", "big.bin")
if sys.argv[2] == "streaming":
    with store.open_output_atomic(path) as out:
        out.write(b"x" * 1_000_000)
        print("writing", flush=True)
        time.sleep(60)
else:
    data = bytes(range(256)) * 160_000  # 40 MB: the PUT takes a while
    print("writing", flush=True)
    store.write_bytes_atomic(path, data)
    print("done", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("phase", ["streaming", "uploading"])
def test_kill_9_during_a_write_leaves_no_partial_object(
        s3: S3Server, s3_env: dict[str, str], tmp_path: Path, phase: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, s3_env["VAST_PIPELINE_HOME"],
                              phase], env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "writing"
    if phase == "uploading":
        time.sleep(0.05)  # somewhere inside the 40 MB PUT (or just after it)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = Store(s3_env["VAST_PIPELINE_HOME"])
    path = store.path("raw", "big.bin")
    if phase == "streaming":
        assert not store.exists(path)
    elif store.exists(path):  # the PUT finished before the kill: then it is whole
        assert store.read_bytes(path) == bytes(range(256)) * 160_000
    assert s3.keys(_prefix(s3_env)) in ([], [f"{_prefix(s3_env)}/raw/big.bin"])


def _snapshot(n: int, instances: int = 3) -> RawSnapshot:
    at = datetime(2026, 11, 21, 1, 0, tzinfo=UTC) + timedelta(minutes=15 * n)
    records = [{"id": 1000 + i, "label": f"job-{i}", "actual_status": "running",
                "dph_total": 0.5 + i, "gpu_name": "RTX 4090", "num_gpus": 1}
               for i in range(instances)]
    return RawSnapshot(snapshot_id=f"snap-{n:02d}", snapshot_at=at, account="default",
                       records=records, source="simulator")


def _day_log(store: Store) -> list[str]:
    return sorted(store.read_parquet(day_path(store, "snapshots", "default", DAY))
                  .column("snapshot_id").to_pylist())


def test_a_lost_race_is_detected_not_a_silent_overwrite(s3_env: dict[str, str]) -> None:
    home = s3_env["VAST_PIPELINE_HOME"]
    # lease_seconds=0: leases expire at once, so two writers really overlap and only the
    # conditional writes of the day files stand between them.
    first, second = Store(home, lease_seconds=0), Store(home, lease_seconds=0)
    _land(first, _snapshot(0))
    path = day_path(first, "snapshots", "default", DAY)
    with first.lock("default", DAY):
        before = first.read_parquet(path)
        _land(second, _snapshot(1))  # changes the day file
        with pytest.raises(WriteConflict, match="Another writer changed"):
            first.write_parquet_atomic(path, before)
    assert _day_log(first) == ["snap-00", "snap-01"]  # the second writer's landing survived


@pytest.mark.parametrize("lease_seconds", [0.0, 600.0])
def test_concurrent_collectors_of_one_day_land_every_snapshot_once(
        s3_env: dict[str, str], lease_seconds: float) -> None:
    """Three collectors (own Store and connection each) land 2 snapshots each of the same
    day at once. With real leases they take turns; with leases that expire at once they
    collide, lose conditional writes and retry. Either way: every snapshot exactly once."""
    home = s3_env["VAST_PIPELINE_HOME"]
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def collector(worker: int) -> None:
        store = Store(home, lease_seconds=lease_seconds)
        start.wait()
        try:
            for n in (worker, worker + 3):
                _land(store, _snapshot(n, instances=2 + n))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=collector, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    store = Store(home)
    assert _day_log(store) == [f"snap-{n:02d}" for n in range(6)]
    rows = store.read_parquet(day_path(store, "instance_snapshots", "default", DAY))
    counts = pc.value_counts(rows.column("snapshot_id")).to_pylist()
    assert {c["values"]: c["counts"] for c in counts} == {
        f"snap-{n:02d}": 2 + n for n in range(6)}
    assert not [k for k in Store(home).walk_files(store.path("_locks"))]


_LEASE_HOLDER = """
import sys, time
from datetime import date
from pipeline.storage.store import Store
store = Store(sys.argv[1], lease_seconds=1.0)
with store.lock("default", date(2026, 11, 21)):
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_killed_collectors_lease_is_taken_over_when_it_expires(
        s3_env: dict[str, str]) -> None:
    home = s3_env["VAST_PIPELINE_HOME"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _LEASE_HOLDER, home], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "holding"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = Store(home)
    assert store.walk_files(store.path("_locks"))  # the dead holder's lease is still there
    result = _land(store, _snapshot(0))
    assert result.snapshots == 1 and _day_log(store) == ["snap-00"]


def test_model_parquet_on_s3_reads_as_a_hive_table_from_another_engine(
        s3: S3Server, s3_env: dict[str, str], tmp_path: Path) -> None:
    """pyarrow (standing in for Spark/Trino: no DuckDB, no manifest) reads the published
    model Parquet by its hive layout and gets exactly the warehouse's rows, once."""
    import pyarrow.dataset as ds

    from pipeline.warehouse.query import query

    home = s3_env["VAST_PIPELINE_HOME"]
    store = Store(home)
    backfill(store, FleetModel(seed=3, size=4), WINDOW)
    build_at_cadence(home)
    backfill(store, FleetModel(seed=3, size=4), _window(
        WINDOW.last + timedelta(minutes=15), WINDOW.last + timedelta(hours=2)))
    build_at_cadence(home)  # incremental: replaces the newest day
    root = store.path("parquet/models/instance_intervals")
    table = ds.dataset(root, filesystem=store.fs, format="parquet",
                       partitioning="hive").to_table()
    expected = query(home, "select count(*), sum(total_cost) from instance_intervals")
    assert table.num_rows == expected.rows[0][0]
    assert pc.sum(table.column("total_cost")).as_py() == pytest.approx(expected.rows[0][1])
    assert table.schema.field("day").type in (pa.date32(), pa.string(), pa.int32(),
                                               pa.dictionary(pa.int32(), pa.string()))


def _portable_query() -> str:
    """The query docs/scaling-out.md shows for Spark/Trino, between its two markers."""
    text = (ROOT / "docs" / "scaling-out.md").read_text(encoding="utf-8")
    block = text.split("<!-- portable-query -->", 2)[1]
    return block.split("```sql", 1)[1].split("```", 1)[0]


def test_the_documented_portable_query_runs_unchanged_over_the_hive_layout_on_s3(
        s3_env: dict[str, str]) -> None:
    """The docs' example for Spark/Trino (docs/scaling-out.md), run as is by DuckDB over
    the same hive layout on S3 (the table defined like an engine's external table), equals
    a pyarrow count."""
    import pyarrow.dataset as ds

    home = s3_env["VAST_PIPELINE_HOME"]
    store = Store(home)
    backfill(store, FleetModel(seed=5, size=4), WINDOW)
    with store.duckdb() as con:
        con.execute(
            "CREATE VIEW instance_snapshots AS SELECT * FROM read_parquet("
            f"'{store.parquet_glob('instance_snapshots')}', hive_partitioning = true, "
            "hive_types = {'account': VARCHAR, 'snapshot_date': DATE})")
        con.execute("SET TimeZone = 'UTC'")
        got = con.execute(_portable_query()).fetchall()
    table = ds.dataset(store.dataset_dir("instance_snapshots"), filesystem=store.fs,
                       format="parquet", partitioning="hive").to_table()
    expected = []
    for day in ("2026-11-20", "2026-11-21"):
        rows = table.filter(pc.equal(pc.cast(table.column("snapshot_date"), pa.string()), day))
        at = rows.column("snapshot_at")
        expected.append(("default", date.fromisoformat(day),
                         len(set(rows.column("snapshot_id").to_pylist())),
                         len(set(rows.column("id").to_pylist())),
                         pc.min(at).as_py(), pc.max(at).as_py()))
    assert got == expected
    assert got[0][4].utcoffset() == timedelta(0)  # UTC timestamps, whatever the engine


def test_unsupported_home_schemes_are_one_sentence(tmp_path: Path) -> None:
    result = run_cli("status", env={"VAST_PIPELINE_HOME": "gs://bucket/prefix"}, cwd=tmp_path)
    assert_one_sentence_error(result, "s3://bucket/prefix")


def test_the_warehouse_file_can_live_apart_from_a_local_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.warehouse.query import query

    home, db = tmp_path / "home", tmp_path / "elsewhere" / "wh.duckdb"
    backfill(Store(home), FleetModel(seed=3, size=3), WINDOW)
    monkeypatch.setenv("VAST_PIPELINE_WAREHOUSE", str(db))
    build_at_cadence(home)
    assert db.is_file() and (tmp_path / "elsewhere" / "wh_state.json").is_file()
    assert not (home / "warehouse.duckdb").exists()
    assert query(home, "select count(*) from instance_intervals").rows[0][0] > 0


def test_a_store_ignoring_conditional_writes_refuses_to_coordinate_collectors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, moto = start_store_without_conditional_writes()
    try:
        env = proxy.env(VAST_PIPELINE_CACHE=str(tmp_path / "cache"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        store = Store(env["VAST_PIPELINE_HOME"])
        path = write_snapshot(store, _snapshot(0))  # plain writes still work
        with pytest.raises(ConfigError, match="ignores conditional writes") as refused:
            _land(store, path)
        assert "VAST_PIPELINE_SINGLE_WRITER=1" in str(refused.value)
        assert not store.exists(day_path(store, "snapshots", "default", DAY))
        monkeypatch.setenv("VAST_PIPELINE_SINGLE_WRITER", "1")  # one collector, promised
        assert _land(Store(env["VAST_PIPELINE_HOME"]), path).snapshots == 1
    finally:
        proxy.process.kill()
        moto.kill()
