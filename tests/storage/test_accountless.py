"""Datasets of no account (the market data): registered, laid out, listed, fingerprinted
and locked by the one `Store`, on a local disk and on a real S3 server (moto on 127.0.0.1).

The same checks run on both homes: real Parquet files written through the Store, then read
back by DuckDB's hive reader and by the Store's own listings.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from pipeline.core.errors import DataError
from pipeline.storage.datasets import MARKET_FAMILY, dataset, family
from pipeline.storage.schema import (
    MARKET_OFFER_SCHEMA,
    MARKET_QUARANTINE_SCHEMA,
    MARKET_SNAPSHOT_LOG_SCHEMA,
    PRICING_KEYS,
    SNAPSHOT_SCHEMA,
    TIMESTAMP,
    pricing_column,
)
from pipeline.storage.store import NO_ACCOUNT, Store
from tests.support.s3_server import S3Server, running_server

SPEC = Path(__file__).resolve().parents[1] / "data" / "search_offers.yaml"  # the docs' spec
MARKET = ("raw_market", "market_offers", "market_quarantine", "market_snapshots")
DAY1, DAY2 = date(2026, 11, 20), date(2026, 11, 21)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_server() as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Store:
    """A fresh home: a local folder, or its own prefix on the S3 server."""
    if request.param == "local":
        return Store(tmp_path / "home")
    server: S3Server = request.getfixturevalue("s3")
    env = server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Store(env["VAST_PIPELINE_HOME"])


def _write(store: Store, name: str, account: str | None, day: date, rows: int) -> str:
    path = f"{store.partition_dir(name, account, day)}/part-0.parquet"
    store.write_parquet_atomic(path, pa.table({"n": list(range(rows))}))
    return path


def test_the_market_datasets_belong_to_no_account() -> None:
    for name in MARKET:
        spec = dataset(name)
        assert not spec.per_account and spec.partition_columns == ("snapshot_date",), name
    assert dataset("raw_market").schema is None
    assert [d.name for d in family(MARKET_FAMILY)] == list(MARKET[1:])  # the log last
    assert dataset("instance_snapshots").partition_columns == ("account", "snapshot_date")


def test_the_offer_schema_types_every_documented_offer_field() -> None:
    """Every field of the spec's response example is a typed column (the nested price
    breakdowns as `search__*` / `instance__*`), and a field the instance contract knows too
    has the same type in both, so offers and instances join without casts."""
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    example = (spec["paths"]["/api/v0/bundles/"]["post"]["responses"]["200"]["content"]
               ["application/json"]["example"]["offers"])
    expected = {f"{parent}__{PRICING_KEYS[key]}" for parent in ("search", "instance")
                for key in example[parent]}
    expected |= {key for key, value in example.items() if not isinstance(value, dict)}
    columns = set(MARKET_OFFER_SCHEMA.names)
    assert expected - columns == set()
    assert {"snapshot_id", "snapshot_at", "offer_type"} <= columns
    assert MARKET_OFFER_SCHEMA.field("snapshot_at").type == TIMESTAMP
    assert MARKET_OFFER_SCHEMA.field("gpu_ids").type == pa.list_(pa.int64())
    assert MARKET_OFFER_SCHEMA.field(pricing_column("search", "totalHour")).type == pa.float64()
    shared = columns & set(SNAPSHOT_SCHEMA.names) - {"quarantined_values"}
    assert len(shared) > 40
    for name in shared:
        assert MARKET_OFFER_SCHEMA.field(name).type == SNAPSHOT_SCHEMA.field(name).type, name
    for name in ("dph_total", "min_bid", "reliability", "gpu_name", "num_gpus", "machine_id"):
        assert name in columns


def test_the_market_log_and_quarantine_hold_the_contracts_columns() -> None:
    log = MARKET_SNAPSHOT_LOG_SCHEMA
    assert {"snapshot_id", "snapshot_at", "requests", "offers", "incomplete", "gpu_names",
            "allocated_storage_gb"} <= set(log.names)
    assert log.field("incomplete").type == pa.bool_()
    assert log.field("gpu_names").type == pa.list_(pa.string())
    assert {"snapshot_id", "offer_type", "offer_id", "reason"} <= set(
        MARKET_QUARANTINE_SCHEMA.names)


def test_a_dataset_of_no_account_is_laid_out_by_day_only(store: Store) -> None:
    path = _write(store, "market_offers", None, DAY1, 3)
    assert path == store.path("parquet/market_offers/snapshot_date=2026-11-20/part-0.parquet")
    assert store.partition_dir("raw_market", None, DAY1) == store.path(
        "raw_market/snapshot_date=2026-11-20")
    with pytest.raises(ValueError, match="partitioned by snapshot_date"):
        store.partition_dir("market_offers", "acct", DAY1)
    with pytest.raises(ValueError, match="partitioned by account, snapshot_date"):
        store.partition_dir("instance_snapshots", None, DAY1)


def test_listings_and_fingerprints_of_a_dataset_of_no_account(store: Store) -> None:
    _write(store, "market_offers", None, DAY1, 3)
    _write(store, "market_offers", None, DAY2, 2)
    _write(store, "instance_snapshots", "acct", DAY1, 1)  # an account's dataset beside it
    # What readers skip: a temp file, a hidden file, a deeper folder.
    day1 = store.partition_dir("market_offers", None, DAY1)
    store.write_bytes_atomic(f"{day1}/_tmp-x-part-0.parquet.tmp", b"half")
    store.write_bytes_atomic(f"{day1}/nested/part-9.parquet", b"x")
    assert store.list_partitions("market_offers") == [(None, DAY1), (None, DAY2)]
    assert store.list_partitions("instance_snapshots") == [("acct", DAY1)]
    assert store.accounts("market_offers") == []
    assert store.parquet_files("market_offers", [DAY2]) == [
        store.uri(f"{store.partition_dir('market_offers', None, DAY2)}/part-0.parquet")]
    before = store.partition_fingerprints("market_offers")
    assert list(before) == [NO_ACCOUNT] and set(before[NO_ACCOUNT]) == {
        "2026-11-20", "2026-11-21"}
    _write(store, "market_offers", None, DAY2, 5)
    after = store.partition_fingerprints("market_offers")
    assert after[NO_ACCOUNT]["2026-11-20"] == before[NO_ACCOUNT]["2026-11-20"]
    assert after[NO_ACCOUNT]["2026-11-21"] != before[NO_ACCOUNT]["2026-11-21"]


def test_duckdb_reads_the_glob_with_the_day_as_the_only_partition_column(
        store: Store) -> None:
    _write(store, "market_offers", None, DAY1, 3)
    _write(store, "market_offers", None, DAY2, 2)
    con = store.duckdb()
    glob = store.parquet_glob("market_offers")
    assert "account=" not in glob
    rows = con.execute(
        f"select snapshot_date::varchar, count(*) from read_parquet('{glob}', "
        "hive_partitioning = true) group by all order by 1").fetchall()
    assert rows == [("2026-11-20", 3), ("2026-11-21", 2)]
    names = [r[0] for r in con.execute(
        f"describe select * from read_parquet('{glob}', hive_partitioning = true)").fetchall()]
    assert names == ["n", "snapshot_date"]


def test_the_days_of_no_account_have_a_lock_of_their_own(store: Store) -> None:
    with store.lock(None, DAY1):
        with (pytest.raises(DataError, match=r"no account \(market data\) on 2026-11-20 "
                            "stayed locked"), store.lock(None, DAY1, timeout=0.2)):
            pass
        with store.lock("acct", DAY1, timeout=0.2), store.lock(None, DAY2, timeout=0.2):
            pass  # an account's day and another day are not held by it
    with store.lock(None, DAY1, timeout=0.2):  # released after use
        pass
    assert store.run_locked(None, DAY1, lambda: 42) == 42
