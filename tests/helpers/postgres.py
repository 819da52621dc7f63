"""A throwaway PostgreSQL server for the tests: Debian's `postgresql` binaries, a cluster
initialised in a temporary directory, listening on a free loopback port (and its Unix socket in
that directory), run as the `postgres` account when the tests run as root. One server per test
run, started on first use; each test gets a database of its own.

`make test` installs the package when it is missing (the Makefile's `postgres` target).
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.hubclient import free_port

#: Where Debian puts the server binaries (/usr/lib/postgresql/<major>/bin).
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
#: The database kinds the parametrized tests run on.
KINDS = ("sqlite", "postgresql")


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(DEBIAN_BINARIES.glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


class PostgresServer:
    """One PostgreSQL cluster in a directory of its own; `url(name)` creates databases."""

    user = "hubflow"

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="hubflow-pg-"))
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self._names = itertools.count()
        # the server refuses to run as root: run it as the postgres account, which owns the folder
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.run_as:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self.run_as, *command], check=True, capture_output=True, cwd=self.root, timeout=120
        )

    def start(self) -> PostgresServer:
        """initdb (password logins only) and start on 127.0.0.1:port; wait until it answers."""
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password)
        if self.run_as:
            shutil.chown(pwfile, "postgres", "postgres")
        data = self.root / "data"
        self._run(
            str(self.binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            self.user,
            "--pwfile",
            str(pwfile),
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        self._run(
            str(self.binaries / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )
        return self

    def stop(self) -> None:
        """Stop the server (fast) and remove its directory."""
        subprocess.run(
            [
                *self.run_as,
                str(self.binaries / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "fast",
                "stop",
            ],
            capture_output=True,
            cwd=self.root,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database` (psycopg 3)."""
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; its URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        dsn = f"host=127.0.0.1 port={self.port} user={self.user} password={self.password}"
        with psycopg.connect(f"{dsn} dbname=postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


_server: PostgresServer | None = None


def postgres_server() -> PostgresServer:
    """The test run's PostgreSQL server, started on first use (a test fails, saying why, where
    PostgreSQL is not installed)."""
    global _server
    if _server is None:
        binaries = server_binaries()
        if binaries is None:
            pytest.fail("PostgreSQL is not installed: `make postgres` installs Debian's package")
        _server = PostgresServer(binaries).start()
        atexit.register(_server.stop)
    return _server


@pytest.fixture(params=KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty jobs database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    else:
        yield postgres_server().new_database()


@pytest.fixture
def pg_url() -> str:
    """An empty PostgreSQL database."""
    return postgres_server().new_database()
