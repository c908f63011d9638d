"""Billed charges: per-day windows over real HTTP, replacement, failures, flattening, rebuild.

Every fetch goes through the real client to the simulator on 127.0.0.1 and lands real
Parquet; flattening edge cases the simulator never sends are fed as raw bills.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from pipeline.billing import (
    RESIDUAL_TYPE,
    RawBill,
    collect_charges,
    fetch_day,
    flatten_bill,
    parse_description,
    rebuild_charges,
    stored_bill,
    stored_day_log,
    stored_day_total,
    write_raw_bill,
)
from pipeline.core.config import Account, Settings
from pipeline.core.errors import AuthError, ConfigError, RetriesExhaustedError
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import SimulatorServer
from pipeline.source.client import VastClient
from pipeline.storage.store import Store

KEY = "charges-test-key-0123456789abcdef"
NOW = datetime(2026, 3, 1, tzinfo=UTC)  # the simulator's present: the days below are complete
DAY = date(2026, 2, 10)
PAGE = 7  # the simulator's page size: fewer rows than the client asks for
ACCOUNT = "acct"


@pytest.fixture(scope="module")
def fleet() -> FleetModel:
    return FleetModel(seed=21, size=40)


@pytest.fixture
def server(fleet: FleetModel):
    with SimulatorServer({KEY: fleet}, clock=lambda: NOW, charges_page_size=PAGE) as sim:
        yield sim


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home")


def client_of(server: SimulatorServer, key: str = KEY) -> VastClient:
    return VastClient(key, server.url, min_interval=0.0, max_attempts=2, backoff_base=0.01,
                      max_retry_seconds=1.0)


def midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def billed_of(fleet: FleetModel, day: date) -> dict[str, object]:
    """The simulator's ground truth of a day: source -> Charge, instances and volumes."""
    start = midnight(day)
    charges = fleet.charges(start, start + 86400) + fleet.volume_charges(start, start + 86400)
    return {f"{c.kind}-{c.instance_id}": c for c in charges}


def files_of(root: Path) -> dict[str, bytes]:
    """Every data file under the home, byte for byte (locks aside)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "_locks" not in p.parts}


# -- the request windows and pagination ---------------------------------------------------
def test_one_request_window_per_utc_day(server: SimulatorServer, store: Store,
                                        fleet: FleetModel) -> None:
    days = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    with client_of(server) as client:
        results = [fetch_day(client, store, ACCOUNT, d) for d in days]
    windows = Counter((r.gte, r.lte) for r in server.charges_log)
    assert set(windows) == {(midnight(d), midnight(d) + 86_399) for d in days}
    for result, day in zip(results, days, strict=True):
        assert windows[(midnight(day), midnight(day) + 86_399)] == result.pages
        rows = stored_bill(store, ACCOUNT, day).to_pylist()
        assert {r["source"] for r in rows} == set(billed_of(fleet, day))
        start = datetime.fromtimestamp(midnight(day), UTC)
        assert all(start <= r["contract_start"] <= r["contract_end"] <= start + timedelta(days=1)
                   for r in rows), "each row belongs to its own day only"
    assert {r.types for r in server.charges_log} == {None}


def test_pages_follow_next_token_when_the_server_sends_fewer_rows(
        server: SimulatorServer, store: Store, fleet: FleetModel) -> None:
    with client_of(server) as client:
        result = fetch_day(client, store, ACCOUNT, DAY)
    contracts = len(billed_of(fleet, DAY))
    assert result.contracts == contracts > 3 * PAGE
    assert result.pages == math.ceil(contracts / PAGE) == len(server.charges_log)
    assert {r.limit for r in server.charges_log} == {500}, "asked for 500 every time"
    tokens = [r.after_token for r in server.charges_log]
    assert tokens[0] is None and None not in tokens[1:] and len(set(tokens)) == len(tokens)
    assert len({(r.gte, r.lte, r.types) for r in server.charges_log}) == 1, "same filters"


def test_a_cursor_only_works_with_the_filters_that_issued_it(server: SimulatorServer) -> None:
    url = f"{server.url}/api/v0/charges/"
    auth = {"Authorization": f"Bearer {KEY}"}
    first = json.dumps({"day": {"gte": midnight(DAY), "lte": midnight(DAY) + 86_399}})
    page = requests.get(url, headers=auth, timeout=10,
                        params={"select_filters": first}).json()
    assert page["count"] == PAGE and page["next_token"]
    other = json.dumps({"day": {"gte": midnight(DAY) + 86_400,
                                "lte": midnight(DAY) + 2 * 86_400 - 1}})
    moved = requests.get(url, headers=auth, timeout=10, params={
        "select_filters": other, "after_token": page["next_token"]})
    assert moved.status_code == 400 and moved.json()["error"] == "invalid_token"
    typed = json.dumps({**json.loads(first), "type": {"in": ["instance"]}})
    assert requests.get(url, headers=auth, timeout=10, params={
        "select_filters": typed, "after_token": page["next_token"]}).status_code == 400
    same = requests.get(url, headers=auth, timeout=10, params={
        "select_filters": first, "after_token": page["next_token"]})
    assert same.status_code == 200 and same.json()["results"]


@pytest.mark.parametrize("params", [
    {},
    {"select_filters": json.dumps({"day": {"gte": 1770681600}})},
    {"select_filters": json.dumps({"type": {"in": ["instance"]}})},
])
def test_missing_day_filters_answer_400(server: SimulatorServer, params: dict) -> None:
    r = requests.get(f"{server.url}/api/v0/charges/", headers={"Authorization": f"Bearer {KEY}"},
                     params=params, timeout=10)
    assert r.status_code == 400
    assert r.json() == {"success": False, "msg": "Must provide both 'day' gte and lte "
                                                 "filters for instance charges"}


# -- replacement -----------------------------------------------------------------------------
def test_a_late_adjustment_replaces_the_day(server: SimulatorServer, store: Store) -> None:
    with client_of(server) as client:
        first = fetch_day(client, store, ACCOUNT, DAY)
        before = stored_bill(store, ACCOUNT, DAY).to_pylist()
        target = next(r for r in before if r["contract_type"] == "instance"
                      and r["item_type"] == "gpu" and r["amount"] > 0)
        server.adjust_charge(KEY, target["contract_id"], DAY, "gpu", 1.25)
        second = fetch_day(client, store, ACCOUNT, DAY)
        third = fetch_day(client, store, ACCOUNT, DAY)
    assert first.previous_total is None and first.change_line().startswith(f"{DAY}: new $")
    assert second.previous_total == first.total
    assert second.total == pytest.approx(first.total + 1.25, abs=1e-9)
    assert second.change_line() == (f"{DAY}: ${first.total:,.2f} -> ${second.total:,.2f}")
    assert third.change_line() == f"{DAY}: unchanged ${second.total:,.2f}"
    after = stored_bill(store, ACCOUNT, DAY).to_pylist()
    assert len(after) == len(before), "replaced, not added"
    assert len({(r["source"], r["item_type"]) for r in after}) == len(after)
    table = pq.read_table(store.partition_dir("billed_charges", ACCOUNT, DAY), partitioning=None)
    assert set(table["fetch_id"].to_pylist()) == {third.fetch_id}
    assert pq.read_table(store.partition_dir("billed_days", ACCOUNT, DAY),
                         partitioning=None).num_rows == 1
    adjusted = next(r for r in after if r["source"] == target["source"]
                    and r["item_type"] == "gpu")
    assert adjusted["amount"] == pytest.approx(target["amount"] + 1.25, abs=1e-9)
    assert stored_day_total(store, ACCOUNT, DAY) == third.total
    assert sum(r["amount"] for r in after) == pytest.approx(third.total, abs=1e-6)


def test_an_adjustment_of_a_new_kind_lands_with_a_null_quantity(
        server: SimulatorServer, store: Store) -> None:
    with client_of(server) as client:
        fetch_day(client, store, ACCOUNT, DAY)
        source = stored_bill(store, ACCOUNT, DAY)["contract_id"][0].as_py()
        server.adjust_charge(KEY, source, DAY, "credit", -2.5)
        fetch_day(client, store, ACCOUNT, DAY)
    [credit] = [r for r in stored_bill(store, ACCOUNT, DAY).to_pylist()
                if r["item_type"] == "credit"]
    assert credit["amount"] == -2.5 and credit["item_description"] == "late adjustment"
    assert credit["quantity"] is None and credit["quantity_unit"] is None
    assert credit["unit_price"] is None


# -- failures leave the stored bill as it was --------------------------------------------
def test_a_listing_broken_in_its_middle_keeps_the_old_bill(server: SimulatorServer,
                                                           store: Store, tmp_path: Path) -> None:
    with client_of(server) as client:
        fetch_day(client, store, ACCOUNT, DAY)
        before = files_of(tmp_path)
        server.adjust_charge(KEY, stored_bill(store, ACCOUNT, DAY)["contract_id"][0].as_py(),
                             DAY, "gpu", 3.0)
        server.fail_charges_after(2)  # two pages, then 503 for good
        with pytest.raises(RetriesExhaustedError, match="Gave up"):
            fetch_day(client, store, ACCOUNT, DAY)
    assert files_of(tmp_path) == before
    with client_of(server, key="revoked-key-000000000000") as client, \
            pytest.raises(AuthError, match="refused the API key"):
        fetch_day(client, store, ACCOUNT, DAY)
    assert files_of(tmp_path) == before


def test_collect_stops_an_account_at_its_failing_day(server: SimulatorServer,
                                                     store: Store, fleet: FleetModel) -> None:
    days = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    account = Account(ACCOUNT, server.url, "VAST_KEY_TEST", "vast", api_key=KEY)
    settings = Settings(home=store.root, accounts=(account,), min_interval_seconds=0.01)
    server.fail_charges_after(math.ceil(len(billed_of(fleet, DAY)) / PAGE), status=400)
    landed: list[str] = []
    with pytest.raises(Exception, match="HTTP 400"):
        collect_charges(settings, days, progress=lambda r: landed.append(r.change_line()))
    assert landed == [f"{DAY}: new ${stored_day_total(store, ACCOUNT, DAY):,.2f}"]
    assert stored_day_log(store, ACCOUNT, days[1]) is None
    with pytest.raises(ConfigError, match="in the future"):
        collect_charges(settings, [datetime.now(UTC).date() + timedelta(days=1)])


# -- what lands ------------------------------------------------------------------------------
def test_an_instance_that_lived_between_snapshots_is_only_in_the_bill(
        server: SimulatorServer, store: Store, fleet: FleetModel) -> None:
    moments = [datetime(2026, 2, 10, h, tzinfo=UTC) for h in (0, 6, 12, 18)]
    seen: set[int] = set()
    with client_of(server) as client:
        for moment in moments:
            client.simulated_time = moment
            seen |= {r["id"] for r in client.list_instances().records}
        client.simulated_time = None
        fetch_day(client, store, ACCOUNT, DAY)
    billed = {r["instance_id"] for r in stored_bill(store, ACCOUNT, DAY).to_pylist()
              if r["contract_type"] == "instance"}
    unseen = billed - seen
    assert unseen, "a short job between two snapshots shows up in the bill only"
    lives = [fleet.lifecycle(i) for i in unseen]
    assert any(moments[0] < datetime.fromtimestamp(lc.birth, UTC)
               and datetime.fromtimestamp(lc.death, UTC) < moments[-1] + timedelta(hours=6)
               for lc in lives)


def test_items_amounts_rounding_and_bandwidth(server: SimulatorServer, store: Store,
                                              fleet: FleetModel) -> None:
    with client_of(server) as client:
        result = fetch_day(client, store, ACCOUNT, DAY)
    truth = billed_of(fleet, DAY)
    rows = stored_bill(store, ACCOUNT, DAY).to_pylist()
    assert all(abs(r["amount"] * 1000 - round(r["amount"] * 1000)) < 1e-6 for r in rows)
    by_contract: dict[str, list[dict]] = {}
    for r in rows:
        by_contract.setdefault(r["source"], []).append(r)
    for source, items in by_contract.items():
        charge = truth[source]
        assert items[0]["contract_amount"] == round(charge.amount, 3)
        assert round(sum(i["amount"] for i in items), 3) == items[0]["contract_amount"]
        kinds = {i["item_type"]: i for i in items}
        if charge.kind == "instance":
            assert kinds["bwd"]["amount"] == round(charge.bwd_amount, 3)
            assert kinds["bwd"]["quantity"] == round(charge.bwd_gb, 3)
            assert kinds["bwd"]["quantity_unit"] == "GB" and kinds["bwu"]["quantity_unit"] == "GB"
            assert kinds["bwu"]["amount"] == round(charge.bwu_amount, 3)
            assert kinds["gpu"]["quantity"] == round(charge.gpu_hours, 3)
            assert kinds["gpu"]["quantity_unit"] == "hours"
            assert kinds["gpu"]["unit_price"] is not None or charge.gpu_hours == 0
    residuals = [r for r in rows if r["item_type"] == RESIDUAL_TYPE]
    assert residuals, "rounding each item apart leaves mills the residual row must carry"
    assert all(abs(r["amount"]) <= 0.003 for r in residuals)
    assert result.total == round(sum(round(c.amount, 3) for c in truth.values()), 3)
    log = stored_day_log(store, ACCOUNT, DAY)
    assert (log["contracts"], log["items"], log["total_amount"], log["pages"]) == (
        result.contracts, len(rows), result.total, result.pages)
    assert log["window_start"] == datetime.fromtimestamp(midnight(DAY), UTC)
    assert log["window_end"] == datetime.fromtimestamp(midnight(DAY) + 86_399, UTC)


def test_volumes_are_kept_with_their_type(server: SimulatorServer, store: Store,
                                          fleet: FleetModel) -> None:
    with client_of(server) as client:
        fetch_day(client, store, ACCOUNT, DAY)
    volumes = [r for r in stored_bill(store, ACCOUNT, DAY).to_pylist()
               if r["contract_type"] == "volume"]
    assert {r["contract_id"] for r in volumes} == {v.id for v in fleet.volumes}
    for r in volumes:
        assert r["source"] == f"volume-{r['contract_id']}" and r["instance_id"] is None
        assert r["item_type"] in ("disk", RESIDUAL_TYPE)
    disk = [r for r in volumes if r["item_type"] == "disk"]
    assert all(r["quantity"] == 24.0 and r["quantity_unit"] == "hours" and r["unit_price"] > 0
               for r in disk)


# -- flattening what the simulator never sends --------------------------------------------
def raw_bill(results: list, day: date = DAY) -> RawBill:
    return RawBill(account=ACCOUNT, day=day, fetch_id="f1",
                   fetched_at=datetime(2026, 3, 1, 8, tzinfo=UTC), results=results, pages=1)


@pytest.mark.parametrize(("text", "parsed"), [
    ("96.000 hours at $0.389/hour", (96.0, "hours", 0.389)),
    ("1,024.5 GB at $0.02/GB", (1024.5, "GB", 0.02)),
    ("12.5 GB downloaded", (12.5, "GB", None)),
    ("flat fee", (None, None, None)),
    ("", (None, None, None)),
    (None, (None, None, None)),
    ("hours: many", (None, None, None)),
])
def test_descriptions_parse_or_give_nulls(text: str | None, parsed: tuple) -> None:
    assert parse_description(text) == parsed


def test_broken_results_are_quarantined_and_the_rest_lands() -> None:
    good = {"type": "instance", "source": "instance-5", "amount": 0.301, "start": 1770681600,
            "end": 1770768000, "description": "Instance 5 Charges - 1 days",
            "metadata": {"label": "x", "template_id": "12"},
            "items": [{"type": "gpu", "amount": 0.1, "description": "flat fee"},
                      {"type": "disk", "amount": 0.2, "description": "2.000 hours at $0.1/hour"},
                      {"type": "bwd", "amount": None}, "junk"]}
    flat = flatten_bill(raw_bill([
        "not an object",
        {"source": "instance-6", "amount": 1.0},
        {"type": "instance", "source": "instance-7", "amount": "abc"},
        {"type": "serverless", "source": "endpoint-9", "amount": 4, "items": "nope",
         "start": "yesterday", "metadata": [1]},
        good,
    ]))
    rows = flat.charges.to_pylist()
    reasons = Counter((q["field"], q["reason"]) for q in flat.quarantine.to_pylist())
    assert reasons == Counter({
        (None, "the result is not a JSON object"): 1,
        (None, "the result has no contract type"): 1,
        (None, "the contract amount is missing or not a number"): 1,
        ("items", "items is not a JSON array"): 1,
        ("start", "start is not epoch seconds"): 1,
        ("metadata", "metadata is not a JSON object"): 1,
        ("items[2].amount", "the item amount is missing or not a number"): 1,
        ("items[3]", "the item is not a JSON object"): 1,
    })
    assert flat.contracts == 2 and flat.total == 4.301
    five = {r["item_type"]: r for r in rows if r["source"] == "instance-5"}
    assert five["gpu"]["quantity"] is None and five["disk"]["quantity"] == 2.0
    assert five[RESIDUAL_TYPE]["amount"] == 0.001, "0.301 - 0.1 - 0.2"
    assert five["gpu"]["template_id"] == 12 and five["gpu"]["instance_id"] == 5
    [nine] = [r for r in rows if r["source"] == "endpoint-9"]
    assert (nine["contract_type"], nine["item_type"], nine["amount"]) == (
        "serverless", RESIDUAL_TYPE, 4.0)
    assert nine["contract_id"] == 9 and nine["instance_id"] is None
    assert nine["contract_start"] is None
    assert flat.log.to_pylist()[0]["quarantined"] == flat.quarantine.num_rows == 8
    assert sum(r["amount"] for r in rows) == pytest.approx(flat.total)


def test_rebuild_lands_a_broken_raw_bill_with_its_quarantine(store: Store) -> None:
    write_raw_bill(store, raw_bill([{"type": "instance", "source": "instance-1",
                                     "amount": 2.0}, 42]))
    outcome = rebuild_charges(store)
    assert [d.quarantined for d in outcome.days] == [1] and not outcome.errors
    [row] = stored_bill(store, ACCOUNT, DAY).to_pylist()
    assert (row["item_type"], row["amount"]) == (RESIDUAL_TYPE, 2.0)


# -- rebuild and secrets ---------------------------------------------------------------------
def test_rebuild_from_raw_equals_what_the_fetch_wrote(server: SimulatorServer, store: Store,
                                                     tmp_path: Path) -> None:
    with client_of(server) as client:
        fetch_day(client, store, ACCOUNT, DAY)
        server.adjust_charge(KEY, stored_bill(store, ACCOUNT, DAY)["contract_id"][0].as_py(),
                             DAY, "disk", 0.5)
        fetch_day(client, store, ACCOUNT, DAY)  # two raw files: the newest must win
        fetch_day(client, store, ACCOUNT, DAY + timedelta(days=1))
    fetched = {k: v for k, v in files_of(tmp_path).items() if "billed_" in k}
    assert len(fetched) == 6
    for path in (tmp_path / "home" / "parquet").rglob("*.parquet"):
        path.unlink()
    outcome = rebuild_charges(store)
    assert len(outcome.days) == 2 and not outcome.errors and not outcome.orphan_days
    assert {k: v for k, v in files_of(tmp_path).items() if "billed_" in k} == fetched
    rebuild_charges(store)
    assert {k: v for k, v in files_of(tmp_path).items() if "billed_" in k} == fetched


def test_no_key_in_any_written_file(server: SimulatorServer, store: Store,
                                    tmp_path: Path) -> None:
    with client_of(server) as client:
        fetch_day(client, store, ACCOUNT, DAY)
    texts = []
    for path in (tmp_path / "home").rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("latin-1"))
            if path.name.endswith(".zst"):
                texts.append(store.read_bytes(str(path), "zstd").decode())
            if path.name.endswith(".parquet"):
                texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
    text = "\n".join(texts)
    assert "instance-" in text  # we did look inside the files
    assert KEY not in text and "Bearer" not in text


class _DiesAfter(Store):
    """A store whose writer dies after `writes` more Parquet files (a crash between files)."""

    writes = 10  # enough for a whole fetch; a test sets the budget of the one that dies

    def write_parquet_atomic(self, path: str, table, **options: object) -> None:
        if self.writes <= 0:
            raise KeyboardInterrupt("killed")
        self.writes -= 1
        super().write_parquet_atomic(path, table, **options)


@pytest.mark.parametrize("writes", range(6))
def test_a_writer_dying_between_files_leaves_one_whole_bill(
        server: SimulatorServer, tmp_path: Path, writes: int) -> None:
    store = _DiesAfter(tmp_path / "home")
    with client_of(server) as client:
        old = fetch_day(client, store, ACCOUNT, DAY)
        old_rows = stored_bill(store, ACCOUNT, DAY).to_pylist()
        server.adjust_charge(KEY, old_rows[0]["contract_id"], DAY, "gpu", 2.0)
        store.writes = writes
        if writes < 5:
            with pytest.raises(KeyboardInterrupt):
                fetch_day(client, store, ACCOUNT, DAY)
        else:
            fetch_day(client, store, ACCOUNT, DAY)
        seen = stored_bill(store, ACCOUNT, DAY)
        total = stored_day_total(store, ACCOUNT, DAY)
        assert round(sum(seen["amount"].to_pylist()), 3) == total
        assert total in (old.total, round(old.total + 2.0, 3))
        assert len(set(seen["fetch_id"].to_pylist())) == 1
        store.writes = 10
        healed = fetch_day(client, store, ACCOUNT, DAY)
    assert healed.total == round(old.total + 2.0, 3)
    table = pq.read_table(store.partition_dir("billed_charges", ACCOUNT, DAY), partitioning=None)
    assert set(table["fetch_id"].to_pylist()) == {healed.fetch_id}


def logged_view(store: Store) -> tuple[float | None, list[dict]]:
    """What a reader keeping only the logged fetch's rows sees: (logged total, its rows)."""
    rows = stored_bill(store, ACCOUNT, DAY)
    assert len(set(rows["fetch_id"].to_pylist())) <= 1
    return stored_day_total(store, ACCOUNT, DAY), rows.to_pylist()


@pytest.mark.parametrize("log", ["never fetched", "unreadable"])
@pytest.mark.parametrize("writes", range(4))
def test_a_first_fetch_dying_between_files_never_shows_a_total_without_rows(
        server: SimulatorServer, tmp_path: Path, writes: int, log: str) -> None:
    store = _DiesAfter(tmp_path / "home")
    if log == "unreadable":
        directory = Path(store.partition_dir("billed_days", ACCOUNT, DAY))
        directory.mkdir(parents=True)
        (directory / "part-0.parquet").write_bytes(b"not parquet")
    store.writes = writes
    with client_of(server) as client:
        if writes < 3:  # billed_charges, billed_quarantine, billed_days
            with pytest.raises(KeyboardInterrupt):
                fetch_day(client, store, ACCOUNT, DAY)
        else:
            fetch_day(client, store, ACCOUNT, DAY)
        total, rows = logged_view(store)
        store.writes = 10
        healed = fetch_day(client, store, ACCOUNT, DAY)
    if total is None:
        assert rows == [], "no bill yet: no rows either"
    else:
        assert total == healed.total and len(rows) == healed.items
        assert round(sum(r["amount"] for r in rows), 3) == total
    assert (total is None) == (writes < 3)
    healed_total, healed_rows = logged_view(store)
    assert healed_total == healed.total and len(healed_rows) == healed.items > 0
    table = pq.read_table(store.partition_dir("billed_charges", ACCOUNT, DAY), partitioning=None)
    assert set(table["fetch_id"].to_pylist()) == {healed.fetch_id}


@pytest.mark.parametrize("writes", range(4))
def test_a_rebuild_dying_between_files_never_doubles_the_logged_bill(
        server: SimulatorServer, tmp_path: Path, writes: int) -> None:
    store = _DiesAfter(tmp_path / "home")
    with client_of(server) as client:
        fetched = fetch_day(client, store, ACCOUNT, DAY)
    files = {k: v for k, v in files_of(tmp_path).items() if "billed_" in k}
    before = logged_view(store)
    assert before[0] == fetched.total and len(before[1]) == fetched.items > 0
    store.writes = writes
    if writes < 3:
        with pytest.raises(KeyboardInterrupt):
            rebuild_charges(store)
    else:
        rebuild_charges(store)
    assert logged_view(store) == before, "the same bill, each row once"
    table = pq.read_table(store.partition_dir("billed_charges", ACCOUNT, DAY), partitioning=None)
    assert table.num_rows == fetched.items
    store.writes = 10
    rebuild_charges(store)
    assert {k: v for k, v in files_of(tmp_path).items() if "billed_" in k} == files


def test_bill_files_dictionary_encode_their_text_columns(server: SimulatorServer,
                                                         store: Store) -> None:
    with client_of(server) as client:
        fetch_day(client, store, ACCOUNT, DAY)
    for dataset in ("billed_charges", "billed_quarantine", "billed_days"):
        meta = pq.ParquetFile(f"{store.partition_dir(dataset, ACCOUNT, DAY)}/part-0.parquet"
                              ).metadata
        group = meta.row_group(0)
        for i in range(meta.num_columns):
            column = group.column(i)
            is_text = meta.schema.column(i).logical_type.type == "STRING"
            assert column.has_dictionary_page == is_text, (dataset, column.path_in_schema)
