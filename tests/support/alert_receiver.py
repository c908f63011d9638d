"""A real webhook receiver on 127.0.0.1 for the alert tests, with scriptable answers.

`answers` is consumed one status per request (then `default`); `stop()` takes it down
(connection refused) and `start()` brings it back on the same port. Every request is kept
with the status it got, so a test can tell delivered messages from refused ones.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_PATH = "/hooks/T0SECRET/B0SECRET/xoxb-webhook-secret-token"


class Receiver:
    def __init__(self, answers: list[int] | None = None, default: int = 200) -> None:
        self.answers = list(answers or [])
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SECRET_PATH}"

    @property
    def heartbeat_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/heartbeat/secret-ping-token"

    def accepted(self) -> list[dict[str, Any]]:
        """Bodies of the POSTs answered 2xx, in arrival order."""
        return [r["body"] for r in self.requests if r["method"] == "POST"
                and 200 <= r["status"] < 300]

    def gets(self) -> list[str]:
        return [r["path"] for r in self.requests if r["method"] == "GET"]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with receiver._lock:
                    status = receiver.answers.pop(0) if receiver.answers else receiver.default
                    receiver.requests.append({
                        "method": method, "path": self.path, "status": status,
                        "body": json.loads(raw) if raw else None})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_GET(self) -> None:
                self._answer("GET")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
