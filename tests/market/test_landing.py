"""Landing market snapshots from their raw files: drift kept, bad records quarantined with
a reason, the continuation's overlap dropped, rebuilds byte-identical, a killed landing
healed. Real raw files and real Parquet through the Store; expectations written by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.market.landing import (
    FAMILY,
    MARKET_OFFERS,
    day_path,
    land_market_pending,
    rebuild_market,
)
from pipeline.market.raw import RawMarketSnapshot, raw_files, read_raw, write_raw
from pipeline.market.search import SearchPage
from pipeline.storage.store import Store

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _offer(offer_id: int, price: float | str, **extra: object) -> dict:
    return {"id": offer_id, "machine_id": 100 + offer_id, "num_gpus": 1,
            "gpu_name": "RTX 4090", "dph_base": price, "dph_total": float(price) + 0.01,
            "verification": "verified", "rentable": True, **extra}


def _snapshot(snapshot_id: str, at: datetime, pages: list[SearchPage]) -> RawMarketSnapshot:
    return RawMarketSnapshot(snapshot_id=snapshot_id, snapshot_at=at, pages=pages,
                             requests=len(pages), gpu_names=["RTX 4090"],
                             allocated_storage_gb=8.0, limit=3)


def _page(offer_type: str, offers: object) -> SearchPage:
    return SearchPage(offer_type, {"type": offer_type, "limit": 3}, {"offers": offers})


def _rows(store: Store, dataset: str) -> list[dict]:
    return pq.read_table(day_path(store, dataset, AT.date())).to_pylist()


def test_drift_kept_bad_records_quarantined_overlap_dropped(tmp_path: Path) -> None:
    store = Store(tmp_path)
    pages = [
        _page("on-demand", [
            _offer(1, 0.30),
            _offer(2, "0.35"),                           # a number as text: coerced
            _offer(3, 0.40, num_gpus="two"),             # not an integer: value quarantined
        ]),
        _page("on-demand", [
            _offer(3, 0.40, num_gpus="two"),             # the continuation's overlap
            "not an offer",                              # record quarantined
            {"id": "x7", "dph_total": 0.5},              # id unusable: record quarantined
            _offer(4, 0.45, brand_new=True, search={"gpuCostPerHour": 0.45, "odd": 1}),
        ]),
        _page("bid", [_offer(1, 0.20, min_bid=0.18)]),   # the same id under the other type
        SearchPage("bid", {"type": "bid"}, {"success": False, "error": "busy"}),
    ]
    write_raw(store, _snapshot("s1", AT, pages))
    result = land_market_pending(store, AT.date())

    offers = _rows(store, "market_offers")
    assert [(r["offer_type"], r["id"]) for r in offers] == [
        ("bid", 1), ("on-demand", 1), ("on-demand", 2), ("on-demand", 3), ("on-demand", 4)]
    by_key = {(r["offer_type"], r["id"]): r for r in offers}
    assert by_key[("on-demand", 2)]["dph_base"] == 0.35
    assert by_key[("on-demand", 3)]["num_gpus"] is None
    assert by_key[("on-demand", 3)]["quarantined_values"] == 1
    assert by_key[("bid", 1)]["min_bid"] == 0.18
    assert json.loads(by_key[("on-demand", 4)]["extra_fields"]) == {
        "brand_new": True, "search.odd": 1}
    assert by_key[("on-demand", 4)]["search__gpu_cost_per_hour"] == 0.45
    assert {r["snapshot_id"] for r in offers} == {"s1"}

    quarantine = {(r["offer_type"], r["offer_id"], r["field"], r["reason"])
                  for r in _rows(store, "market_quarantine")}
    assert quarantine == {
        ("on-demand", 3, "num_gpus", "expected integer, got string 'two'"),
        ("on-demand", None, None, "record is not an object, got string 'not an offer'"),
        ("on-demand", None, None, "expected integer id, got string 'x7'"),
        ("bid", None, None, "search response has no 'offers' list"),
    }
    [log] = _rows(store, "market_snapshots")
    assert (log["offers"], log["requests"], log["quarantined_records"],
            log["quarantined_values"], log["incomplete"]) == (5, 4, 3, 1, False)
    assert log["new_fields"] == ["brand_new", "search.odd"]
    assert log["gpu_names"] == ["RTX 4090"] and log["allocated_storage_gb"] == 8.0
    assert (result.offers, result.quarantined_records, result.quarantined_values) == (5, 3, 1)


def test_rebuild_is_byte_identical_and_a_killed_landing_heals(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = _snapshot("s1", AT, [_page("on-demand", [_offer(1, 0.3), _offer(2, 0.4)])])
    second = _snapshot("s2", AT.replace(hour=11),
                       [_page("on-demand", [_offer(1, 0.31)]), _page("bid", [_offer(5, 0.1)])])
    write_raw(store, first)
    land_market_pending(store, AT.date())
    write_raw(store, second)  # its landing was killed: raw written, Parquet not
    assert {r["snapshot_id"] for r in _rows(store, "market_snapshots")} == {"s1"}

    healed = land_market_pending(store, AT.date())
    assert healed.snapshot_ids == ["s2"]  # only the missing snapshot was flattened
    assert [(r["snapshot_id"], r["offer_type"], r["id"]) for r in _rows(store, "market_offers")] \
        == [("s1", "on-demand", 1), ("s1", "on-demand", 2), ("s2", "bid", 5),
            ("s2", "on-demand", 1)]
    assert land_market_pending(store, AT.date()).snapshots == 0  # nothing new: no rewrite

    before = {name: Path(day_path(store, name, AT.date())).read_bytes() for name in FAMILY}
    [day] = rebuild_market(store)
    assert (day.snapshots, day.offers) == (2, 4)
    after = {name: Path(day_path(store, name, AT.date())).read_bytes() for name in FAMILY}
    assert after == before


def test_uncommitted_rows_are_dropped(tmp_path: Path) -> None:
    """Rows of a snapshot the log does not list (a writer killed between files) go."""
    store = Store(tmp_path)
    write_raw(store, _snapshot("s1", AT, [_page("on-demand", [_offer(1, 0.3)])]))
    land_market_pending(store, AT.date())
    path = day_path(store, MARKET_OFFERS, AT.date())
    offers = pq.read_table(path)
    ghost = offers.set_column(offers.schema.get_field_index("snapshot_id"),
                              offers.schema.field("snapshot_id"), pa.array(["ghost"]))
    pq.write_table(pa.concat_tables([offers, ghost]), path)
    assert "ghost" in pq.read_table(path).column("snapshot_id").to_pylist()
    write_raw(store, _snapshot("s2", AT.replace(hour=12), [_page("bid", [_offer(9, 0.2)])]))
    land_market_pending(store, AT.date())
    assert sorted({r["snapshot_id"] for r in _rows(store, "market_offers")}) == ["s1", "s2"]


def test_raw_file_round_trips_scrubbed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    secret = "tok-SECRET-123"
    snapshot = _snapshot("s1", AT, [_page("on-demand", [_offer(1, 0.3, jupyter_token=secret)])])
    path = write_raw(store, snapshot)
    assert raw_files(store, AT.date()) == {"s1": path}
    assert secret.encode() not in store.read_bytes(path, "zstd")
    back = read_raw(store, path)
    assert back.snapshot_id == "s1" and back.snapshot_at == AT and back.limit == 3
    assert back.pages[0].offers[0]["has_jupyter_token"] is True
