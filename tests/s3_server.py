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
from dataclasses import dataclass
from typing import Any

BUCKET = "vast-pipeline-test"
_SERVE = (
    "import sys, time\n"
    "from moto.server import ThreadedMotoServer\n"
    "server = ThreadedMotoServer(ip_address='127.0.0.1', port=int(sys.argv[1]), verbose=False)\n"
    "server.start()\n"
    "while True:\n"
    "    time.sleep(3600)\n"
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server() -> S3Server:
    """Start moto's S3 server on a free port, create a user with a key and the bucket."""
    import boto3

    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    process = subprocess.Popen([sys.executable, "-c", _SERVE, str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the moto S3 server did not start") from None
            time.sleep(0.1)
    endpoint = f"http://127.0.0.1:{port}"
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="pipeline")
    iam.put_user_policy(UserName="pipeline", PolicyName="all", PolicyDocument=_POLICY)
    key = iam.create_access_key(UserName="pipeline")["AccessKey"]
    server = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], process)
    server.client().create_bucket(Bucket=BUCKET)
    return server
