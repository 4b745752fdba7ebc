"""A throw-away PostgreSQL cluster for the tests: Debian's server, started in a temporary folder.

PostgreSQL refuses to run as root, and the tests run as root on CI: the cluster's
folder belongs to the `postgres` user and its programs run as that user. It listens
on loopback only, on a free port, with its socket in its own folder. The tests
connect as the role `lane` with a password read from a .pgpass file (PGPASSFILE),
the way lane's docs tell users to keep a password out of lane.yaml; the superuser
connects over the socket to create a database per test.

fsync is off: the tests kill processes and the server, never the machine, and the
operating system keeps what was written.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSWORD = "s3cret-test-pass"  # noqa: S105 - a throw-away cluster's
ROLE = "lane"


def server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: /usr/local/bin, else the newest /usr/lib/postgresql/*/bin."""
    if (Path("/usr/local/bin/initdb").exists() and Path("/usr/local/bin/pg_ctl").exists()):
        return Path("/usr/local/bin")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


class Cluster:
    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.home = Path(tempfile.mkdtemp(prefix="lane-pg-"))  # under /tmp: the postgres user can reach it
        self.data = self.home / "data"
        self.port = _free_port()
        self._as_root = os.getuid() == 0
        self._names = itertools.count(1)
        if self._as_root:
            user = pwd.getpwnam("postgres")
            os.chown(self.home, user.pw_uid, user.pw_gid)
        self.home.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                  "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.home}'\n"
                       "fsync = off\nfull_page_writes = off\nmax_connections = 200\n")
        if self._as_root:
            os.chown(self.data / "postgresql.conf", pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid)
        self.start()
        try:
            self.admin(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        except BaseException:  # no server left running behind a failed start
            self.remove()
            raise
        self.passfile = Path(tempfile.mkdtemp(prefix="lane-pgpass-")) / "pgpass"
        self.passfile.write_text(f"127.0.0.1:{self.port}:*:{ROLE}:{PASSWORD}\n")
        self.passfile.chmod(0o600)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.home)
        assert done.returncode == 0, f"{program} failed: {done.stderr or done.stdout}"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.home / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.home), port=self.port, user="postgres", dbname="postgres", autocommit=True) as db:
            db.execute(sql.encode())

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(host=str(self.home), port=self.port, user="postgres", dbname="postgres", autocommit=True) as db:
            return db.execute(sql.encode()).fetchall()

    def cut_leases(self, url: str) -> None:
        """End every session holding a lease in the database of `url`, as a server restart or a network cut
        would (its process lives on and does not know yet), and wait until the server let their locks go."""
        database = url.rsplit("/", 1)[1]
        where = f"locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = '{database}')"
        self.rows(f"SELECT pg_terminate_backend(pid) FROM pg_locks WHERE {where}")
        for _ in range(200):
            if not self.rows(f"SELECT 1 FROM pg_locks WHERE {where}"):
                return
            time.sleep(0.05)
        raise AssertionError("the leases' sessions did not end")

    def new_database(self) -> str:
        """A fresh database owned by the test role; its store URL (no password: .pgpass has it)."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def url(self, database: str, *, password: str | None = None) -> str:
        return f"postgresql://{ROLE}{':' + password if password else ''}@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except AssertionError:
            pass  # already stopped
        shutil.rmtree(self.home, ignore_errors=True)
        if hasattr(self, "passfile"):
            shutil.rmtree(self.passfile.parent, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A running cluster for the whole session; skipped where the server is not installed, except on CI, where it fails."""
    bin_dir = server_bin()
    if bin_dir is None:
        message = "PostgreSQL's server is not installed (apt-get install postgresql; .ci/run does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    cluster = Cluster(bin_dir)
    saved = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(cluster.passfile)  # the `lane` processes the tests start read it too
    try:
        yield cluster
    finally:
        if saved is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = saved
        cluster.remove()

