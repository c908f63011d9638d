"""Serving the metrics: `/metrics` over HTTP, or one textfile for node_exporter.

Why a small handler of our own around prometheus_client's encoder: a scrape that cannot
read the warehouse (it was moved, a build left it unreadable) answers 503 with the one
sentence saying why, and the process goes on serving, instead of a traceback on stderr
and a dropped connection.
"""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import CollectorRegistry

from pipeline.core.errors import ConfigError, PipelineError
from pipeline.metrics.collect import registry_for
from pipeline.storage.store import Store
from pipeline.warehouse.query import open_read_only

log = logging.getLogger("pipeline.metrics")
DEFAULT_LISTEN = "127.0.0.1:9108"  # loopback: expose it wider only on purpose
PATH = "/metrics"
# The classic text format: every name here is a legacy one, so the bytes are the same as
# 1.0.0's, and Prometheus 2.x (Debian's, this project's tests) reads it without doubt.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:9108`) -> (host, port); ConfigError (one sentence)."""
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--listen {text!r} is not HOST:PORT; give e.g. {DEFAULT_LISTEN} "
                          "(port 0 picks a free one).")
    return host, int(port_text)


def _check_warehouse(home: Path | str) -> None:
    """Fail before serving when there is no warehouse to read (one sentence)."""
    open_read_only(home).close()


def _handler(registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != PATH:
                self._send(404, f"Not found: the metrics are at {PATH}.\n".encode(),
                           "text/plain; charset=utf-8")
                return
            try:
                body = generate_latest(registry)
            except PipelineError as exc:
                log.warning("a scrape failed: %s", exc)
                self._send(503, f"{exc}\n".encode(), "text/plain; charset=utf-8")
                return
            self._send(200, body, CONTENT_TYPE)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug(format, *args)

    return Handler


def metrics_server(home: Path | str, listen: str = DEFAULT_LISTEN) -> ThreadingHTTPServer:
    """A server (not yet serving) for `/metrics` of `home` on `listen`; the caller runs
    `serve_forever()` and closes it. One-sentence ConfigError for a bad or taken address,
    WarehouseError when there is no warehouse yet."""
    host, port = parse_listen(listen)
    _check_warehouse(home)
    try:
        server = ThreadingHTTPServer((host, port), _handler(registry_for(home)))
    except OSError as exc:  # taken, not ours to bind, or a host that does not resolve
        raise ConfigError(f"Cannot listen on {listen} ({exc.strerror or exc}); pick another "
                          "--listen HOST:PORT.") from None
    server.daemon_threads = True
    return server


def write_textfile(home: Path | str, path: Path | str) -> Path:
    """The metrics of `home`, written once to `path` atomically (node_exporter's textfile
    collector never sees a half-written file: a temporary name not ending in `.prom`, then
    a rename). Returns the path."""
    target = Path(path).expanduser().resolve()
    _check_warehouse(home)
    body = generate_latest(registry_for(home))
    store = Store(target.parent)
    store.write_bytes_atomic(store.path(target.name), body)
    return target
