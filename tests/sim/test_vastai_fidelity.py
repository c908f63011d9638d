"""The official `vastai` client is the judge: pointed at the simulator, it lists exactly the
simulated fleet. Runs the installed CLI as a subprocess (HOME in a temp dir, update check
off, loopback URL only), with the server's clock fixed so both sides agree on the moment.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import SimulatorServer

VASTAI = Path(sys.executable).with_name("vastai")
T = datetime(2026, 4, 2, 15, 45, tzinfo=UTC)
KEY = "fidelity-key-5f0c1e"
# Fields the CLI passes through untouched (it rewrites `duration` and `extra_env`, strips strings).
KEY_FIELDS = ("id", "actual_status", "intended_status", "cur_state", "label", "gpu_name",
              "num_gpus", "dph_base", "dph_total", "storage_total_cost", "search", "instance",
              "machine_id", "host_id", "reliability2", "jupyter_token", "start_date", "is_bid",
              "geolocation", "gpu_util")



@pytest.fixture(scope="module", autouse=True)
def _vastai_installed() -> None:
    assert VASTAI.exists(), "the vastai CLI (a dev dependency) is missing: make install"


@pytest.fixture(scope="module")
def fleet() -> FleetModel:
    return FleetModel(seed=17, size=60)


@pytest.fixture(scope="module")
def server(fleet: FleetModel) -> Iterator[SimulatorServer]:
    with SimulatorServer({KEY: fleet}, clock=lambda: T) as sim:
        yield sim


def _start(server: SimulatorServer, home: Path, *args: str) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache"), "VASTAI_NO_UPDATE_CHECK": "1", "CI": "1",
           "PATH": os.environ.get("PATH", ""), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    return subprocess.Popen([str(VASTAI), "--url", server.url, "--api-key", KEY, *args, "--raw"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_all(server: SimulatorServer, home: Path, commands: dict[str, list[str]]) -> dict:
    """Run the CLI invocations concurrently (each takes ~2 s of interpreter start-up).

    Each gets a HOME of its own: the client creates its config folder on start, and
    concurrent creations of one folder race (FileExistsError).
    """
    procs = {name: _start(server, home / name, *args) for name, args in commands.items()}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"{name}: {stderr[-2000:]}"
        out[name] = json.loads(stdout)
    return out


def _same(cli_row: dict, record: dict, *, stripped: bool) -> None:
    """`show instances` strips string values; `show instance` passes them through."""
    for name in KEY_FIELDS:
        a, b = cli_row[name], record[name]
        if isinstance(b, float):
            assert math.isclose(a, b, rel_tol=1e-12), name
        else:
            assert a == b, name
    assert cli_row["extra_env"] == {k: v for k, v in record["extra_env"]}
    ips = record["local_ipaddrs"]
    assert cli_row["local_ipaddrs"] == (ips.strip() if stripped else ips)
    assert set(cli_row) == set(record)


def test_official_client_lists_exactly_the_simulated_fleet(server: SimulatorServer,
                                                          fleet: FleetModel,
                                                          tmp_path: Path) -> None:
    records = fleet.records_at(T)
    assert len(records) > 50, "the listing must span several pages"
    running = [r for r in records if r["actual_status"] == "running"]
    live, gone = records[7]["id"], fleet.ids_at(T - timedelta(days=35))[0]
    assert fleet.record(gone, T) is None
    results = _run_all(server, tmp_path, {
        "all": ["show", "instances"],
        "running_by_price": ["show", "instances", "--status", "running",
                             "--order-by", "dph_base desc"],
        "one_page": ["show", "instances", "--limit", "10"],
        "live": ["show", "instance", str(live)],
        "gone": ["show", "instance", str(gone)],
    })

    listed = results["all"]
    assert [r["id"] for r in listed] == [r["id"] for r in records]
    for cli_row, record in zip(listed, records, strict=True):
        _same(cli_row, record, stripped=True)

    expected = sorted(running, key=lambda r: (-r["dph_base"], r["id"]))
    assert [r["id"] for r in results["running_by_price"]] == [r["id"] for r in expected]

    page = results["one_page"]
    assert [r["id"] for r in page["instances"]] == [r["id"] for r in records[:10]]
    assert page["total_instances"] == len(records) and page["next_token"]

    _same(results["live"], fleet.record(live, T), stripped=False)
    assert results["gone"] == {"instances": None}

    v1_calls = [e for e in server.request_log if e[1] == "/api/v1/instances/"]
    assert all(status == 200 for _, _, status in server.request_log), server.request_log
    pages = math.ceil(len(records) / 25) + math.ceil(len(running) / 25) + 1
    assert len(v1_calls) == pages, "the client pages with limit 25 until next_token is empty"


def test_official_client_pages_through_the_simulated_bill(server: SimulatorServer,
                                                          fleet: FleetModel,
                                                          tmp_path: Path) -> None:
    """`vastai show invoices-v1 --charges` pages with --next-token and the same filters."""
    day = ["-s", "2026-03-30", "-e", "2026-03-31", "-l", "100"]
    gte = int(datetime(2026, 3, 30, tzinfo=UTC).timestamp())
    lte = int(datetime(2026, 3, 31, tzinfo=UTC).timestamp())  # the client sends midnight
    billed = fleet.charges(gte, lte + 1) + fleet.volume_charges(gte, lte + 1)
    first = _run_all(server, tmp_path, {
        "page": ["show", "invoices-v1", "--charges", *day],
        "volumes": ["show", "invoices-v1", "--charges", *day, "--charge-type", "v"],
    })
    assert {r["source"] for r in first["volumes"]["results"]} == {
        f"volume-{v.id}" for v in fleet.volumes}
    results, page = list(first["page"]["results"]), first["page"]
    assert 0 < page["count"] < 100 and page["total"] == len(billed), "fewer rows than asked"
    while page["next_token"]:
        page = _run_all(server, tmp_path, {"next": [
            "show", "invoices-v1", "--charges", *day, "--next-token", page["next_token"]]})["next"]
        results += page["results"]
    assert sorted(r["source"] for r in results) == sorted(
        f"{c.kind}-{c.instance_id}" for c in billed)
    assert [(r["start"], int(r["source"].rsplit("-", 1)[1])) for r in results] == sorted(
        (r["start"], int(r["source"].rsplit("-", 1)[1])) for r in results), "latest_first=false"
    moved = _start(server, tmp_path, "show", "invoices-v1", "--charges", "-s", "2026-03-29",
                   "-e", "2026-03-31", "--next-token", first["page"]["next_token"])
    stdout, stderr = moved.communicate(timeout=60)
    refused = json.loads(stdout + stderr)  # the CLI prints HTTP errors as JSON, exits 0
    assert (refused["status_code"], refused["error"]) == (400, True), "cursor bound to filters"
    assert "filters must match" in refused["msg"]


OFFER_EXAMPLE = json.loads((Path(__file__).parents[1] / "data" / "search_offers_example.json")
                           .read_text(encoding="utf-8"))["offers"][0]


def test_official_client_searches_the_simulated_market(fleet: FleetModel,
                                                       tmp_path: Path) -> None:
    """`vastai search offers ... --raw` (the client's default filters `verified`,
    `external`, `rentable`, its `_`-for-space and string numbers) lists the offers the
    market holds, each with every field of the spec's example."""
    with SimulatorServer({KEY: fleet}, clock=lambda: T, search_min_interval=0.0) as sim:
        market = sim.market.offers_at(T, "on-demand", 5.0)
        bids = sim.market.offers_at(T, "bid", 5.0)
        results = _run_all(sim, tmp_path, {
            "cheap_4090": ["search", "offers", "gpu_name=RTX_4090 num_gpus>=1",
                           "-o", "dph_total", "--limit", "15"],
            "interruptible": ["search", "offers", "-i", "reliability>0.9", "-o", "dph_total-"],
            "everything": ["search", "offers", "-n", "--storage", "40", "-o", "id"],
        })
        calls = [e for e in sim.request_log if e[1] == "/api/v0/bundles/"]
    assert [(method, status) for method, _, status in calls] == [("POST", 200)] * 3

    def default_filters(o: dict) -> bool:
        return o["verification"] == "verified" and o["rentable"]

    cheap = sorted((o for o in market if default_filters(o) and o["gpu_name"] == "RTX 4090"),
                   key=lambda o: (o["dph_total"], o["id"]))[:15]
    assert [r["id"] for r in results["cheap_4090"]] == [o["id"] for o in cheap] and cheap
    dear = sorted((o for o in bids if default_filters(o) and o["reliability"] > 0.9),
                  key=lambda o: (-o["dph_total"], o["id"]))[:64]
    assert [r["id"] for r in results["interruptible"]] == [o["id"] for o in dear] and dear
    assert all(r["is_bid"] and r["dph_total"] >= r["min_bid"]
               for r in results["interruptible"])
    listed = results["everything"]
    assert [r["id"] for r in listed] == sorted(o["id"] for o in market)[:64]
    for row in listed + results["cheap_4090"]:
        assert set(row) >= set(OFFER_EXAMPLE), set(OFFER_EXAMPLE) - set(row)
        assert math.isclose(row["dph_total"], row["dph_base"] + row["storage_cost"] * (
            40 if row in listed else 5) / 720, rel_tol=1e-12)
