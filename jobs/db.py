"""The jobs database: its engine (with the pool the settings size), its schema versions (Alembic
revisions in jobs/migrations/) and their upgrade, taken under a lock so that processes starting
at once upgrade it once.

`python -m hubflow.jobs.db upgrade` upgrades the database the settings name (HUBFLOW_JOBS_DB_URL,
else the SQLite file in HUBFLOW_DATA_DIR); `python -m hubflow.jobs.db current` prints its version.
"""

from __future__ import annotations

import fcntl
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

from hubflow.hub.settings import HubflowSettings, JobsSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The revision of the schema hubflow 0.1 created without versions (stamped, then upgraded).
FIRST_REVISION = "r1"
#: Where the jobs schema's version is kept: not Alembic's default `alembic_version`, which
#: JupyterHub uses for its own, so both may share one database.
VERSION_TABLE = "hubflow_jobs_version"
#: PostgreSQL advisory lock key held while the schema is created or upgraded ("hubflow").
ADVISORY_LOCK = 0x6875_6266_6C6F_77
#: How long a SQLite connection waits for another process's write before it fails.
SQLITE_BUSY_S = 30
UPGRADE_COMMAND = "python -m hubflow.jobs.db upgrade"

log = logging.getLogger(__name__)
# Alembic's own lines (its context, each step) say nothing an operator needs; `upgrade` says
# what it does in one line.
logging.getLogger("alembic").setLevel(logging.WARNING)


class SchemaError(RuntimeError):
    """The database's schema is not the one this hubflow runs with; the message says what to do."""


def make_engine(url: str, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """An engine for `url`: SQLite in WAL mode with a busy timeout, or a server database with a
    pool of `pool_size` connections (plus `max_overflow` at peaks) checked before use."""
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_S})
        event.listen(engine, "connect", _sqlite_wal)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["version_table"] = VERSION_TABLE
    return config


def _revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def head() -> str:
    """The newest schema revision this hubflow knows."""
    return str(ScriptDirectory.from_config(_config()).get_current_head())


def current(connection: Connection) -> str | None:
    """The database's schema revision: None for an empty database; FIRST_REVISION for one
    hubflow 0.1 created before schema versions."""
    found = _revision(connection)
    if found is None and inspect(connection).has_table("jobs"):
        return FIRST_REVISION
    return found


@contextmanager
def upgrade_lock(engine: Engine) -> Iterator[Connection]:
    """A connection that alone may create or upgrade the schema until the block ends: a
    PostgreSQL advisory lock, or a lock file beside a SQLite database."""
    url = engine.url
    with engine.connect() as connection:
        if url.get_backend_name() == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK})
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK})
                connection.commit()
        elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            with open(f"{url.database}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield connection
        else:
            yield connection


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (creating it on an empty database), under the lock."""
    with upgrade_lock(engine) as connection:
        if _revision(connection) is None and inspect(connection).has_table("jobs"):
            command.stamp(_config(connection), FIRST_REVISION)
            connection.commit()
        found, target = current(connection), head() if revision == "head" else revision
        if found != target:
            log.info("Jobs database: schema %s -> %s", found or "empty", target)
        command.upgrade(_config(connection), revision)
        connection.commit()


def prepare(engine: Engine, auto_upgrade: bool) -> None:
    """Make sure the schema is the newest: upgrade it (with `auto_upgrade`) or refuse with the
    command that does; refuse a database a newer hubflow upgraded."""
    with engine.connect() as connection:
        found = current(connection)
    newest = head()
    if found == newest:
        return
    known = {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}
    if found is not None and found not in known:
        raise SchemaError(
            f"the jobs database is at schema version {found}, newer than this hubflow's "
            f"({newest}): run the hubflow release that upgraded it"
        )
    if found is not None and not auto_upgrade:
        raise SchemaError(
            f"the jobs database is at schema version {found}, this hubflow needs {newest}: "
            f"back it up, then run `{UPGRADE_COMMAND}` with the service's settings "
            "(or set HUBFLOW_JOBS_DB_UPGRADE=on)"
        )
    upgrade(engine)


def main(argv: list[str]) -> int:
    """`upgrade` or `current`, on the database the settings name."""
    if argv not in (["upgrade"], ["current"]):
        print("usage: python -m hubflow.jobs.db upgrade|current", file=sys.stderr)
        return 2
    jobs = JobsSettings.from_env()
    engine = make_engine(jobs.database_url(HubflowSettings.from_env().data_path))
    if argv == ["upgrade"]:
        upgrade(engine)
    with engine.connect() as connection:
        print(current(connection) or "empty")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
