"""The thin adapter from `http.server` to `SimulatorServer.handle`: framing, the body,
the headers, injected slowness and truncation, and silence (nothing echoes headers).
"""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeline.sim.replies import bad_request

if TYPE_CHECKING:
    from pipeline.sim.simulator import SimulatorServer


class Handler(BaseHTTPRequestHandler):
    """One connection's requests, answered by the server `sim` (set per server)."""

    sim: SimulatorServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
    # meets the client's delayed ACK and every response stalls about 40 ms on keep-alive.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "vast-simulator"

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def _answer(self) -> None:
        raw_length = (self.headers.get("Content-Length") or "0").strip()
        if raw_length.isascii() and raw_length.isdigit():
            length = int(raw_length)
            body = self.rfile.read(length) if length else b""
            reply = self.sim.handle(self.command, self.path, self.headers, body,
                                    client=self.client_address[0])
        else:  # negative or garbage: the body cannot be framed, so answer and hang up
            reply = bad_request("Content-Length must be a non-negative integer.").reply
            reply.headers["Connection"] = "close"
            self.sim.log_request(self.command, urlsplit(self.path).path, reply.status)
            self.close_connection = True
        out = reply.body
        if reply.truncate:
            out = out[: max(1, len(out) // 2)]
        try:
            if reply.delay:
                time.sleep(reply.delay)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(out)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(out)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's stderr log: tests stay quiet and nothing echoes headers."""
