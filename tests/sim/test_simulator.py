"""The simulator over real HTTP on 127.0.0.1: envelopes, pagination, auth, throttle, faults."""

from __future__ import annotations

import base64
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import (
    DEMO_API_KEY,
    SIM_TIME_HEADER,
    THROTTLE_TEXT,
    FaultConfig,
    SimulatorServer,
)

T = datetime(2026, 2, 10, 9, 30, tzinfo=UTC)
KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def fleet() -> FleetModel:
    return FleetModel(seed=21, size=70)


@pytest.fixture(scope="module")
def sim(fleet: FleetModel) -> Iterator[SimulatorServer]:
    with SimulatorServer({KEY: fleet}, clock=lambda: T) as server:
        yield server


def v1(url: str, headers: dict | None = None, **params: object) -> requests.Response:
    """GET the v1 list the way the official client encodes parameters (JSON values)."""
    query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    return requests.get(f"{url}/api/v1/instances/", params=query,
                        headers=AUTH if headers is None else headers, timeout=10)


def all_pages(url: str, **params: object) -> list[dict]:
    rows, token = [], None
    for _ in range(100):
        extra = {"after_token": token} if token else {}
        body = v1(url, **params, **extra).json()
        assert body["success"] is True
        assert body["instances_found"] == len(body["instances"]) <= 25
        rows += body["instances"]
        token = body["next_token"]
        if token is None:
            return rows
    raise AssertionError("the cursor never ended")


def test_pagination_lists_the_whole_fleet(sim: SimulatorServer, fleet: FleetModel) -> None:
    rows = all_pages(sim.url, limit=25, order_by=[{"col": "id", "dir": "asc"}])
    assert rows == fleet.records_at(T)
    assert len(rows) > 50


def test_limit_is_capped_and_nonpositive_means_five(sim: SimulatorServer) -> None:
    assert len(v1(sim.url, limit=100).json()["instances"]) == 25
    assert len(v1(sim.url, limit=0).json()["instances"]) == 5
    assert len(v1(sim.url, limit=-3).json()["instances"]) == 5
    assert len(v1(sim.url, limit=7).json()["instances"]) == 7


def test_envelope_counts_and_labels(sim: SimulatorServer, fleet: FleetModel) -> None:
    body = v1(sim.url, limit=10).json()
    records = fleet.records_at(T)
    assert set(body) == {"success", "instances_found", "total_instances", "label_counts",
                         "next_token", "instances"}
    assert body["total_instances"] == len(records)
    assert sum(body["label_counts"].values()) == len(records)
    assert body["label_counts"].get("", 0) == sum(r["label"] is None for r in records)


def test_order_by_desc_with_cursor(sim: SimulatorServer, fleet: FleetModel) -> None:
    rows = all_pages(sim.url, limit=9, order_by=[{"col": "dph_base", "dir": "desc"}])
    expected = sorted(fleet.records_at(T), key=lambda r: (-r["dph_base"], r["id"]))
    assert [r["id"] for r in rows] == [r["id"] for r in expected]


def test_filters_and_select_cols(sim: SimulatorServer, fleet: FleetModel) -> None:
    rows = all_pages(sim.url,
                     select_filters={"actual_status": {"in": ["running", "stopped"]},
                                     "dph_base": {"gte": 0.5}},
                     select_cols=["id", "actual_status", "no_such_col"])
    expected = [r for r in fleet.records_at(T)
                if r["actual_status"] in ("running", "stopped") and r["dph_base"] >= 0.5]
    assert rows == [{"id": r["id"], "actual_status": r["actual_status"], "no_such_col": None}
                    for r in expected]
    assert 0 < len(rows) < len(fleet.records_at(T))


@pytest.mark.parametrize("params", [
    {"select_filters": {"dph_total": {"gt": 1}}},
    {"select_filters": {"num_gpus": {"eq": 1}}},
    {"select_filters": {"no_such_column": {"eq": 1}}},
    {"select_filters": {"label": {"like": "x"}}},
    {"order_by": [{"col": "no_such_column", "dir": "asc"}]},
    {"limit": "many"},
    {"limit": "1e400"},
    {"limit": "NaN"},
    {"order_by": [{"col": ["id"], "dir": "asc"}]},
    {"order_by": [{"col": {"id": 1}}]},
    {"select_filters": {"label": {"in": "dev-box"}}},
])
def test_invalid_requests_answer_400(sim: SimulatorServer, params: dict) -> None:
    r = v1(sim.url, **params)
    assert r.status_code == 400
    assert r.json()["success"] is False and r.json()["error"] == "invalid_request"


@pytest.mark.parametrize("token", ["not base64!", base64.b64encode(b"{}").decode(),
                                   base64.b64encode(b"[1, 2]").decode(), "eyJ2YWx1ZXMi"])
def test_bad_token_answers_400_invalid_token(sim: SimulatorServer, token: str) -> None:
    r = v1(sim.url, after_token=token)
    assert r.status_code == 400
    assert r.json() == {"success": False, "error": "invalid_token",
                        "msg": "Invalid pagination token"}


def test_auth_missing_and_invalid(sim: SimulatorServer) -> None:
    missing = v1(sim.url, headers={})
    assert missing.status_code == 403 and missing.json()["error"] == "auth_error"
    wrong = v1(sim.url, headers={"Authorization": "Bearer nope-not-a-key"})
    assert wrong.status_code == 404
    assert wrong.json() == {"success": False, "error": "auth_error", "msg": "Invalid user key"}
    assert "nope-not-a-key" not in wrong.text
    shown = requests.get(f"{sim.url}/api/v0/instances/1/", headers={"Authorization": "Bearer x"},
                         params={"owner": "me"}, timeout=10)
    assert shown.status_code == 404


def test_several_accounts_each_see_their_own_fleet() -> None:
    a, b = FleetModel(seed=1, size=10), FleetModel(seed=2, size=10)
    with SimulatorServer({"key-a": a, "key-b": b}, clock=lambda: T) as server:
        for key, model in (("key-a", a), ("key-b", b)):
            got = v1(server.url, headers={"Authorization": f"Bearer {key}"}).json()
            assert got["instances"] == model.records_at(T)[:25]
    with SimulatorServer(a, clock=lambda: T) as demo:
        got = v1(demo.url, headers={"Authorization": f"Bearer {DEMO_API_KEY}"}).json()
        assert got["total_instances"] == len(a.records_at(T))


def test_legacy_list_is_gone_with_410(sim: SimulatorServer) -> None:
    r = requests.get(f"{sim.url}/api/v0/instances/", params={"owner": "me"}, headers=AUTH,
                     timeout=10)
    assert r.status_code == 410
    body = r.json()
    assert body["success"] is False and body["error"] == "deprecated_endpoint"
    assert "/api/v1/instances/" in body["msg"]


def test_show_instance_live_and_destroyed(sim: SimulatorServer, fleet: FleetModel) -> None:
    live = fleet.records_at(T)[4]
    r = requests.get(f"{sim.url}/api/v0/instances/{live['id']}/", params={"owner": "me"},
                     headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json() == {"instances": live}
    later = T + timedelta(days=31)  # past the lifetime cap: every instance alive at T is gone
    r = requests.get(f"{sim.url}/api/v0/instances/{live['id']}/", params={"owner": "me"},
                     headers={**AUTH, SIM_TIME_HEADER: later.isoformat()}, timeout=10)
    assert r.status_code == 200 and r.json() == {"instances": None}
    bad = requests.get(f"{sim.url}/api/v0/instances/abc/", headers=AUTH, timeout=10)
    assert bad.status_code == 400


def test_unknown_path_is_json_404(sim: SimulatorServer) -> None:
    r = requests.get(f"{sim.url}/api/v9/nothing/", headers=AUTH, timeout=10)
    assert r.status_code == 404 and r.json()["success"] is False


def test_simulated_time_header(sim: SimulatorServer, fleet: FleetModel) -> None:
    moment = datetime(2026, 3, 5, 1, 2, 3, tzinfo=UTC)
    assert fleet.records_at(moment) != fleet.records_at(T)
    for value in (moment.isoformat(), moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  str(moment.timestamp())):
        got = v1(sim.url, headers={**AUTH, SIM_TIME_HEADER: value}).json()
        assert got["instances"] == fleet.records_at(moment)[:25]
    assert v1(sim.url, headers={**AUTH, SIM_TIME_HEADER: "yesterday"}).status_code == 400


def test_wall_clock_by_default() -> None:
    model = FleetModel(seed=4, size=10)
    with SimulatorServer(model) as server:
        before = datetime.now(UTC)
        got = v1(server.url, headers={"Authorization": f"Bearer {DEMO_API_KEY}"}).json()
        after = datetime.now(UTC)
    assert got["total_instances"] in (len(model.ids_at(before)), len(model.ids_at(after)))


def test_min_interval_429_has_no_retry_after(fleet: FleetModel) -> None:
    # 2 s: two back-to-back requests stay within it even on a loaded machine (0.3 s did not)
    with SimulatorServer({KEY: fleet}, min_interval=2.0, clock=lambda: T) as server:
        first, second = v1(server.url), v1(server.url)
        assert first.status_code == 200
        assert second.status_code == 429
        assert second.text == THROTTLE_TEXT
        assert "Retry-After" not in second.headers
        other = requests.get(f"{server.url}/api/v0/instances/1/", headers=AUTH, timeout=10)
        assert other.status_code == 200, "the interval is per endpoint"
        time.sleep(2.05)
        assert v1(server.url).status_code == 200
        assert server.request_log[:2] == [("GET", "/api/v1/instances/", 200),
                                          ("GET", "/api/v1/instances/", 429)]


def _statuses(server: SimulatorServer, n: int) -> list[requests.Response]:
    return [v1(server.url, limit=3) for _ in range(n)]


def test_fault_429(fleet: FleetModel) -> None:
    with SimulatorServer({KEY: fleet}, faults=FaultConfig(rate_429=0.5, seed=1),
                         clock=lambda: T) as server:
        replies = _statuses(server, 30)
    throttled = [r for r in replies if r.status_code == 429]
    assert 5 < len(throttled) < 25
    assert all("Retry-After" not in r.headers for r in throttled)
    assert {r.status_code for r in replies} == {200, 429}


def test_fault_5xx_and_html(fleet: FleetModel) -> None:
    with SimulatorServer({KEY: fleet}, faults=FaultConfig(rate_5xx=0.4, seed=2),
                         clock=lambda: T) as server:
        codes = {r.status_code for r in _statuses(server, 40)}
    assert {502, 503, 504} <= codes and 200 in codes
    with SimulatorServer({KEY: fleet}, faults=FaultConfig(rate_html=1.0),
                         clock=lambda: T) as server:
        r = v1(server.url)
    assert r.status_code == 502 and r.text.lstrip().startswith("<html>")
    assert r.headers["Content-Type"].startswith("text/html")


def test_fault_truncated_body(fleet: FleetModel) -> None:
    with SimulatorServer({KEY: fleet}, faults=FaultConfig(rate_truncated=1.0),
                         clock=lambda: T) as server:
        r = v1(server.url)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.text)
    assert r.text.startswith('{"success":true')


def test_fault_slow_triggers_read_timeout(fleet: FleetModel) -> None:
    with SimulatorServer({KEY: fleet}, faults=FaultConfig(rate_slow=1.0, slow_seconds=1.0),
                         clock=lambda: T) as server:
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(f"{server.url}/api/v1/instances/", headers=AUTH, timeout=(2, 0.3))
        start = time.monotonic()
        r = v1(server.url)
        assert r.status_code == 200 and time.monotonic() - start >= 0.9


def test_faults_are_seeded(fleet: FleetModel) -> None:
    def run() -> list[int]:
        with SimulatorServer({KEY: fleet}, clock=lambda: T,
                             faults=FaultConfig(rate_429=0.3, rate_5xx=0.3, seed=9)) as server:
            return [r.status_code for r in _statuses(server, 15)]

    first = run()
    assert 200 in first and 429 in first and set(first) & {502, 503, 504}, first
    assert run() == first  # the same seed injects the same faults in the same order


def test_charges_paging_and_filters(fleet: FleetModel) -> None:
    gte = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
    lte = int(datetime(2026, 2, 8, tzinfo=UTC).timestamp())
    # lte is inclusive to the second: the window is [gte, lte + 1).
    billed = fleet.charges(gte, lte + 1) + fleet.volume_charges(gte, lte + 1)
    assert len(billed) > 12 and any(c.kind == "volume" for c in billed)
    with SimulatorServer({KEY: fleet}, clock=lambda: T) as server:
        url = f"{server.url}/api/v0/charges/"
        filters = json.dumps({"day": {"gte": gte, "lte": lte}})
        results, token, pages = [], None, 0
        while True:
            params = {"select_filters": filters, "limit": "5"}
            if token:
                params["after_token"] = token
            body = requests.get(url, params=params, headers=AUTH, timeout=30).json()
            assert body["success"] and body["count"] == len(body["results"]) <= 5
            assert body["total"] == len(billed)
            results += body["results"]
            pages += 1
            token = body["next_token"]
            if token is None:
                break
        assert pages == -(-len(billed) // 5)
        assert sorted(r["source"] for r in results) == sorted(
            f"{c.kind}-{c.instance_id}" for c in billed)
        by_source = {f"{c.kind}-{c.instance_id}": c for c in billed}
        for r in results:
            c = by_source[r["source"]]
            assert r["type"] == c.kind and r["amount"] == round(c.amount, 3)
            assert gte <= r["start"] <= r["end"] <= lte + 1
            kinds = {"gpu", "disk", "bwd", "bwu"} if c.kind == "instance" else {"disk"}
            assert {i["type"] for i in r["items"]} == kinds
            disk = next(i for i in r["items"] if i["type"] == "disk")
            assert disk["amount"] == round(c.disk_amount, 3)
            assert r["metadata"].get("label") == c.label
        starts = [r["start"] for r in results]
        assert starts == sorted(starts, reverse=True), "latest first by default"
        missing = requests.get(url, params={"select_filters": json.dumps({"day": {"gte": gte}})},
                               headers=AUTH, timeout=10)
        assert missing.status_code == 400 and "day" in missing.json()["msg"]
        bad = requests.get(url, params={"select_filters": filters, "after_token": "%%%"},
                           headers=AUTH, timeout=10)
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_token"
        volumes = requests.get(url, params={"select_filters": json.dumps(
            {"day": {"gte": gte, "lte": lte}, "type": {"in": ["volume"]}})}, headers=AUTH,
            timeout=10).json()
        assert volumes["total"] == len(fleet.volumes) == 2
        assert {r["type"] for r in volumes["results"]} == {"volume"}
        serverless = requests.get(url, params={"select_filters": json.dumps(
            {"day": {"gte": gte, "lte": lte}, "type": {"in": ["serverless"]}})}, headers=AUTH,
            timeout=10).json()
        assert serverless["total"] == 0


def test_charges_stop_at_the_present(fleet: FleetModel) -> None:
    with SimulatorServer({KEY: fleet}, clock=lambda: T) as server:
        far = int((T + timedelta(days=30)).timestamp())
        body = requests.get(f"{server.url}/api/v0/charges/", headers=AUTH, timeout=30, params={
            "select_filters": json.dumps({"day": {"gte": far - 86400 * 40, "lte": far}}),
            "limit": 500}).json()
    assert body["results"]
    assert max(r["end"] for r in body["results"]) <= T.timestamp()


def test_request_log_never_holds_the_key(fleet: FleetModel, capfd: pytest.CaptureFixture) -> None:
    with SimulatorServer({KEY: fleet}, clock=lambda: T) as server:
        v1(server.url)
        v1(server.url, headers={"Authorization": "Bearer wrong-secret-key"})
        # Old clients put the key in the query string: the log keeps the path only.
        v1(server.url, api_key=KEY)
        assert server.requests_served == 3 and len(server.request_log) == 3
        assert KEY not in repr(server) and KEY not in repr(server.request_log)
        assert "wrong-secret-key" not in repr(server.request_log)
    out, err = capfd.readouterr()
    assert KEY not in out + err and "wrong-secret-key" not in out + err


def test_current_user_for_the_official_cli(sim: SimulatorServer) -> None:
    r = requests.get(f"{sim.url}/api/v0/users/current", headers=AUTH, timeout=10)
    assert r.status_code == 200
    assert r.json()["host_agreement_accepted"] is False and "api_key" not in r.json()


def test_serve_runs_until_interrupted() -> None:
    code = "from pipeline.sim.simulator import serve; serve(0, 3, 12, min_interval=0.0)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first, second = proc.stdout.readline(), proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url, first
        r = v1(url.group(0), headers={"Authorization": f"Bearer {DEMO_API_KEY}"})
        assert r.status_code == 200 and r.json()["total_instances"] > 0
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert DEMO_API_KEY in second


def test_keep_log_false_counts_without_logging(fleet: FleetModel) -> None:
    with SimulatorServer({KEY: fleet}, clock=lambda: T, keep_log=False) as server:
        assert v1(server.url).status_code == 200
        assert v1(server.url, headers={}).status_code == 403
        assert server.requests_served == 2 and server.request_log == []


def test_full_listing_builds_the_fleet_once() -> None:
    class Counting(FleetModel):
        calls = 0

        def entries_at(self, t):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return super().entries_at(t)

    model = Counting(seed=5, size=120)
    with SimulatorServer({KEY: model}, clock=lambda: T) as server:
        for order in ([{"col": "id", "dir": "asc"}], [{"col": "gpu_temp", "dir": "desc"}]):
            rows = all_pages(server.url, order_by=order)
            assert len(rows) > 50 and len({r["id"] for r in rows}) == len(rows)
        filtered = all_pages(server.url, select_filters={"actual_status": "running"})
        assert filtered and all(r["actual_status"] == "running" for r in filtered)
    assert Counting.calls == 3, "each listing is built once and sliced per page"


def test_unexpected_error_answers_json_500(fleet: FleetModel,
                                           capfd: pytest.CaptureFixture) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("boom")

    with SimulatorServer({KEY: fleet}, clock=lambda: T) as server:
        server._instances.page = explode  # type: ignore[method-assign]
        r = v1(server.url)
        assert r.status_code == 500
        assert r.json() == {"success": False, "error": "server_error", "msg": "Internal error."}
        assert server.request_log[-1] == ("GET", "/api/v1/instances/", 500)
        assert v1(server.url, headers={}).status_code == 403, "the server keeps serving"
    out, err = capfd.readouterr()
    assert "boom" not in out + err and "Traceback" not in out + err


@pytest.mark.parametrize("filters", [
    {"day": {"gte": 0, "lte": 1}, "type": {"in": 5}},
    {"day": {"gte": 0, "lte": 1}, "type": {"in": "instance"}},
    {"day": {"gte": -1e400, "lte": 1}},
    {"day": {"gte": 0, "lte": 10**400}},
])
def test_bad_charges_filters_answer_400(sim: SimulatorServer, filters: dict) -> None:
    r = requests.get(f"{sim.url}/api/v0/charges/", headers=AUTH, timeout=10,
                     params={"select_filters": json.dumps(filters)})
    assert r.status_code == 400 and r.json()["success"] is False


@pytest.mark.parametrize("length", ["-5", "abc", "1e3", "+7"])
def test_bad_content_length_answers_400_without_blocking(sim: SimulatorServer,
                                                        length: str) -> None:
    host, port = sim.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"GET /api/v1/instances/ HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {KEY}\r\nContent-Length: {length}\r\n\r\n"
                     .encode())
        data = b""
        while chunk := conn.recv(65536):  # the server hangs up after answering
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert json.loads(body)["error"] == "invalid_request"
