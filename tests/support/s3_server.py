"""A real S3 endpoint on 127.0.0.1 for the object-storage tests (moto in server mode).

The server runs in its own process, as a real S3-compatible service would, with request
authentication switched on (`INITIAL_NO_AUTH_ACTION_COUNT`): the first three calls create
an IAM user, its policy and its access key; every later call must be signed with that key,
so a wrong secret is refused exactly as AWS, MinIO or R2 would refuse it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.support.ports import free_port

BUCKET = "vast-pipeline-test"
# Serves until its parent (the test process) is gone, even if that one was killed.
_SERVE = (
    "import os, sys, time\n"
    "from moto.server import ThreadedMotoServer\n"
    "parent = os.getppid()\n"
    "server = ThreadedMotoServer(ip_address='127.0.0.1', port=int(sys.argv[1]), verbose=False)\n"
    "server.start()\n"
    "while os.getppid() == parent:\n"
    "    time.sleep(0.5)\n"
)
_POLICY = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", '
           '"Resource": "*"}]}')


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen

    def env(self, prefix: str | None = None, **overrides: str) -> dict[str, str]:
        """The AWS_* variables (and VAST_PIPELINE_HOME) a client of this server needs."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "VAST_PIPELINE_HOME": f"s3://{BUCKET}/{prefix or uuid.uuid4().hex[:12]}",
        }
        env.update(overrides)
        return env

    def client(self) -> Any:  # a boto3 client
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)

    def keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix` (as another S3 client lists them)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix.rstrip("/") + "/")
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def start_server() -> S3Server:
    """Start moto's S3 server on a free port, create a user with a key and the bucket."""
    import boto3

    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    process = subprocess.Popen([sys.executable, "-c", _SERVE, str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(port, process)
    endpoint = f"http://127.0.0.1:{port}"
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="pipeline")
    iam.put_user_policy(UserName="pipeline", PolicyName="all", PolicyDocument=_POLICY)
    key = iam.create_access_key(UserName="pipeline")["AccessKey"]
    server = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], process)
    server.client().create_bucket(Bucket=BUCKET)
    return server


@contextmanager
def running_server() -> Iterator[S3Server]:
    """`start_server`, stopped again on exit (what a module-scoped fixture yields)."""
    server = start_server()
    try:
        yield server
    finally:
        server.process.kill()
        server.process.wait()


_NO_CONDITIONS = """
import http.client, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = sys.argv[2]

class Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("if-none-match", "if-match", "host")}
        upstream = http.client.HTTPConnection(UPSTREAM)
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        head = self.command == "HEAD"  # keeps the object's Content-Length, sends no body
        for k, v in answer.getheaders():
            if k.lower() not in ("transfer-encoding", "connection") and (
                    head or k.lower() != "content-length"):
                self.send_header(k, v)
        if not head:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    def log_message(self, *args):
        pass

import os, threading, time
parent = os.getppid()
threading.Thread(target=ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Forward)
                 .serve_forever, daemon=True).start()
while os.getppid() == parent:
    time.sleep(0.5)
"""


def start_store_without_conditional_writes() -> tuple[S3Server, subprocess.Popen]:
    """An S3 endpoint that ignores `If-None-Match`/`If-Match`, as some S3-compatible
    services do: a proxy dropping those headers in front of a moto server without
    authentication (the proxy changes signed headers). Returns the proxy as the server."""
    import boto3

    moto_port, proxy_port = free_port(), free_port()
    moto = subprocess.Popen([sys.executable, "-c", _SERVE, str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy = subprocess.Popen([sys.executable, "-c", _NO_CONDITIONS, str(proxy_port),
                              f"127.0.0.1:{moto_port}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for port in (moto_port, proxy_port):
        _wait_for(port, moto)
    endpoint = f"http://127.0.0.1:{proxy_port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="any", aws_secret_access_key="any").create_bucket(
        Bucket=BUCKET)
    return S3Server(endpoint, "any", "any", proxy), moto


def _wait_for(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.1)
