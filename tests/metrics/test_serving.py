"""How `vast-pipeline metrics` is run: the textfile written atomically, and the mistakes
and failures a user meets said in one sentence."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import requests

from pipeline.metrics.catalog import METRICS, exported_name
from pipeline.metrics.serve import write_textfile
from tests.support.cli import assert_one_sentence_error, run_cli
from tests.support.metrics_fixtures import (
    FAILED_COLLECTIONS,
    fail_collections,
    metrics_home,
    parse,
    scrape,
    serving,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("serving") / "home"
    home.mkdir()
    return metrics_home(home)


def test_textfile_holds_what_the_endpoint_serves(built: Path, tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "vast.prom"
    result = run_cli("metrics", "--textfile", str(target), home=built)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(target)
    text = target.read_text()
    with serving(built) as url:
        served = scrape(url)
    assert parse(text) == parse(served)
    assert set(parse(text)) == {exported_name(m) for m in METRICS}
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert sorted(p.name for p in target.parent.iterdir()) == ["vast.prom"]  # no leftovers


def test_textfile_is_never_seen_half_written(built: Path, tmp_path: Path) -> None:
    """A reader polling the file while it is rewritten again and again only ever sees a
    whole exposition (node_exporter reads it at any moment)."""
    target = tmp_path / "vast.prom"
    write_textfile(built, target)
    whole = target.read_text()
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(target.read_text())
            time.sleep(0.0002)  # leave the writer the interpreter most of the time

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(10):
            write_textfile(built, target)
    finally:
        done.set()
        reader.join()
    assert len(seen) > 10
    assert {len(text) for text in seen} == {len(whole)}
    assert [p.name for p in tmp_path.iterdir()] == ["vast.prom"]  # only *.prom is read


def test_no_warehouse_yet_is_one_sentence(home: Path, tmp_path: Path) -> None:
    result = run_cli("metrics", home=home)
    assert_one_sentence_error(result, "No warehouse", "vast-pipeline build")
    assert result.returncode == 1
    target = tmp_path / "vast.prom"
    result = run_cli("metrics", "--textfile", str(target), home=home)
    assert_one_sentence_error(result, "No warehouse", "vast-pipeline build")
    assert not target.exists()


@pytest.mark.parametrize("listen", ["9108", "localhost:http", "127.0.0.1:70000", ":9108"])
def test_a_bad_listen_address_is_one_sentence(home: Path, listen: str) -> None:
    result = run_cli("metrics", "--listen", listen, home=home)
    assert_one_sentence_error(result, "--listen", "HOST:PORT")
    assert result.returncode == 2


def test_a_port_in_use_is_one_sentence(built: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("metrics", "--listen", f"127.0.0.1:{port}", home=built)
    assert_one_sentence_error(result, f"127.0.0.1:{port}", "--listen")
    assert result.returncode == 2


def test_a_scrape_that_cannot_read_the_warehouse_says_why_and_serving_goes_on(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    metrics_home(home)  # its own: the views name their home's files, so no copy would do
    with serving(home) as url:
        db = home / "warehouse.duckdb"
        db.rename(home / "moved.duckdb")
        response = requests.get(url, timeout=30)
        assert response.status_code == 503
        lines = response.text.strip().splitlines()
        assert len(lines) == 1 and "No warehouse" in lines[0], response.text
        (home / "moved.duckdb").rename(db)
        assert "vast_instance_up" in parse(scrape(url))
        assert requests.get(url.replace("/metrics", "/other"), timeout=30).status_code == 404


class _Counting(BaseHTTPRequestHandler):
    """A stand-in Vast.ai API that only counts what reaches it."""

    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(500)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_each_scrape_reads_the_state_now_and_never_calls_the_api(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    metrics_home(home)
    api = HTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    env = {"VAST_API_KEY": "k-never-used", "VAST_URL": f"http://127.0.0.1:{api.server_port}"}
    try:
        with serving(home, env=env) as url:
            before = _by_account(scrape(url), "vast_account_collection_failures")
            fail_collections(home, "main", 2)  # while it serves: no restart, no build
            after = _by_account(scrape(url), "vast_account_collection_failures")
            firing = _by_account_rule(scrape(url))
    finally:
        api.shutdown()
        api.server_close()
    assert before == {"main": 0.0, "lab": float(FAILED_COLLECTIONS)}
    assert after == {"main": 2.0, "lab": float(FAILED_COLLECTIONS)}
    assert firing[("main", "collection_failing")] == 1.0  # 2 in a row: the default threshold
    assert _Counting.hits == 0


def _by_account(text: str, name: str) -> dict[str, float]:
    return {labels["account"]: value for labels, value in parse(text)[name]}


def _by_account_rule(text: str) -> dict[tuple[str, str], float]:
    return {(labels["account"], labels["rule"]): value
            for labels, value in parse(text)["vast_account_alerts_firing"]}
