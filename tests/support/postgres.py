"""A real PostgreSQL server for the deployment tests (Debian's `postgresql` package).

`initdb` refuses to run as root, so as root every server command runs as the unprivileged
`postgres` user the Debian package creates (`runuser`), in a temporary folder that user
owns. The binaries come from `pg_config --bindir`. The server listens on a free port on
127.0.0.1 and on a Unix socket in its own folder (mode 0700); the superuser logs in over
that socket by peer authentication only, and TCP clients need a password
(scram-sha-256). The password of the `dagster` role is generated here and set over the
socket, sent on psql's standard input: it is never written to a file or a command line.
A watchdog process stops the server if the test process dies without stopping it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from tests.support.ports import free_port

ROLE = "dagster"
# What deploy/dagster.yaml reads (tests/deploy/test_compose.py checks they agree).
ENV_NAMES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD",
             "DAGSTER_PG_DB")
SERVICE_USER = "postgres"  # created by Debian's postgresql package (.ci/run installs it)

# Stops the server (fast shutdown) once its parent, the test process, is gone.
_WATCHDOG = (
    "import os, subprocess, sys, time\n"
    "parent = os.getppid()\n"
    "while os.getppid() == parent:\n"
    "    time.sleep(1)\n"
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
)


def bindir() -> Path:
    """Where the server's binaries are (`pg_config --bindir`)."""
    found = shutil.which("pg_config")
    if found is None:
        raise RuntimeError("pg_config not found: install Debian's postgresql package "
                           "(.ci/run does)")
    out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _as_service_user(argv: list[str]) -> list[str]:
    """`argv` run as the unprivileged user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", SERVICE_USER, "--", *argv]


@dataclass
class PostgresServer:
    """One running server; `env(db)` gives the DAGSTER_PG_* variables of deploy/dagster.yaml."""

    folder: Path
    port: int
    password: str
    bin: Path
    watchdog: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    def _pg_ctl(self, *args: str) -> list[str]:
        return _as_service_user([str(self.bin / "pg_ctl"), "-D", str(self.data), *args])

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        subprocess.run(self._pg_ctl("-w", "-t", "60", "-l", str(self.folder / "log" /
                                                                "server.log"),
                                    "-o", options, "start"),
                       check=True, capture_output=True, timeout=90)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: disconnect clients, roll back, shut down cleanly)."""
        subprocess.run(self._pg_ctl("-w", "-t", "60", "-m", mode, "stop"),
                       check=True, capture_output=True, timeout=90)

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run `sql` as the superuser over the Unix socket; the SQL travels on stdin."""
        argv = _as_service_user([str(self.bin / "psql"), "-X", "-q", "-A", "-t",
                                 "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
                                 "-p", str(self.port), "-d", db, "-f", "-"])
        out = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout

    def create_database(self, name: str) -> dict[str, str]:
        """A new empty database owned by the `dagster` role; returns its DAGSTER_PG_* env."""
        self.psql(f'create database "{name}" owner {ROLE};')
        return self.env(name)

    def env(self, db: str) -> dict[str, str]:
        values = ("127.0.0.1", str(self.port), ROLE, self.password, db)
        return dict(zip(ENV_NAMES, values, strict=True))

    def close(self) -> None:
        """Stop the server and remove its folder."""
        with suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb a new cluster in a temporary folder, start it, create the `dagster` role."""
    folder = Path(tempfile.mkdtemp(prefix="vast-pg-"))
    for sub in ("data", "socket", "log"):
        (folder / sub).mkdir(mode=0o700)
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVICE_USER)
        for path in (folder, *folder.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
    server = PostgresServer(folder, free_port(), secrets.token_urlsafe(24), bindir())
    subprocess.run(_as_service_user([
        str(server.bin / "initdb"), "-D", str(server.data), "--auth-local=peer",
        "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync"]),
        check=True, capture_output=True, timeout=120)
    server.start()
    server.watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, *server._pg_ctl("-m", "immediate", "stop")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The password's only trip: psql's standard input, over the socket.
    server.psql(f"create role {ROLE} login password '{server.password}';")
    return server


DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def deploy_dagster_home(folder: Path) -> Path:
    """A DAGSTER_HOME holding the shipped deploy/dagster.yaml, byte for byte (Dagster
    writes into its home, so the checkout's deploy/ folder is never used as one)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEPLOY / "dagster.yaml", folder / "dagster.yaml")
    return folder


@contextmanager
def deploy_instance(env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance `env` (DAGSTER_HOME and DAGSTER_PG_*) describes, opened as the
    webserver would open it."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with dg.DagsterInstance.get() as instance:
            yield instance
