"""The jobs database's schema versions: a database at the first version, full of records, is
upgraded at the service's start and keeps every record; the models match the newest version;
an old database is refused, with the command to run, when upgrades at start are off."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from hubflow.jobs import db
from hubflow.jobs.store import Base, JobStore
from hubflow.launcher.contract import JobState
from tests.helpers.postgres import db_url  # noqa: F401 (a fixture)

#: Records as hubflow 0.1 wrote them, one per state.
FIRST_VERSION_ROWS = [
    {"id": f"{i:012x}", "user": f"user{i % 5}", "state": state.value, "started": started}
    for i, (state, started) in enumerate(
        [(s, None if s is JobState.QUEUED else 1700000000.0 + n) for n, s in enumerate(JobState)]
        * 4
    )
]

INSERT = text(
    'INSERT INTO jobs (id, "user", server_name, name, framework, workers, gpus_per_worker, '
    "gpus, groups, workspace, environment, spec, state, reason, created, started, "
    "supervisor_pid) VALUES (:id, :user, 'gpu', 'train', 'pytorch', 2, 1, '[\"0\",\"1\"]', "
    "'[\"ml\"]', '/home/x', '{\"A\": \"1\"}', '{}', :state, '', :created, :started, 4242)"
)


def fill_first_version(url: str) -> None:
    engine = db.make_engine(url)
    db.upgrade(engine, db.FIRST_REVISION)
    with engine.begin() as connection:
        for n, row in enumerate(FIRST_VERSION_ROWS):
            connection.execute(INSERT, dict(row, created=1700000000.0 + n))
    engine.dispose()


def test_a_first_version_database_is_upgraded_with_every_record(db_url: str) -> None:  # noqa: F811
    fill_first_version(db_url)
    store = JobStore(db_url)
    with store.engine.connect() as connection:
        assert db.current(connection) == db.head() != db.FIRST_REVISION
    jobs = store.list()
    assert [j.id for j in jobs] == [row["id"] for row in FIRST_VERSION_ROWS]
    for job, row in zip(jobs, FIRST_VERSION_ROWS, strict=True):
        assert (job.user, job.state, job.started) == (row["user"], row["state"], row["started"])
        assert (job.gpus, job.groups, job.environment) == (["0", "1"], ["ml"], {"A": "1"})
        assert job.supervisor_pid == 4242
        # a job that had started had been launched by its backend
        assert job.launched is (row["started"] is not None)
        assert job.client_key is None and job.stopping is False
    assert len(store.list(user="user1", states=[JobState.QUEUED])) > 0


def test_a_database_from_before_schema_versions_is_recognised_and_upgraded(
    db_url: str,  # noqa: F811
) -> None:
    fill_first_version(db_url)
    engine = db.make_engine(db_url)
    with engine.begin() as connection:  # hubflow 0.1 kept no alembic_version table
        connection.execute(text(f"DROP TABLE {db.VERSION_TABLE}"))
    engine.dispose()
    store = JobStore(db_url)
    assert len(store.list()) == len(FIRST_VERSION_ROWS)


def test_the_models_match_the_newest_schema_version(db_url: str) -> None:  # noqa: F811
    store = JobStore(db_url)
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": db.VERSION_TABLE})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_without_upgrades_at_start_an_old_database_is_refused_with_the_command(
    db_url: str,  # noqa: F811
) -> None:
    fill_first_version(db_url)
    with pytest.raises(db.SchemaError) as refused:
        JobStore(db_url, auto_upgrade=False)
    assert "python -m hubflow.jobs.db upgrade" in str(refused.value)
    assert f"at schema version {db.FIRST_REVISION}, this hubflow needs {db.head()}" in str(
        refused.value
    )
    started = time.monotonic()
    db.upgrade(db.make_engine(db_url))  # what the command does
    assert len(JobStore(db_url, auto_upgrade=False).list()) == len(FIRST_VERSION_ROWS)
    assert time.monotonic() - started < 60


def test_a_database_a_newer_hubflow_upgraded_is_refused(db_url: str) -> None:  # noqa: F811
    JobStore(db_url)
    engine = db.make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {db.VERSION_TABLE} SET version_num = 'r999'"))
    with pytest.raises(db.SchemaError, match="r999, newer than this hubflow"):
        JobStore(db_url)


def test_the_jobs_schema_shares_a_database_with_jupyterhubs_own_versions(
    db_url: str,  # noqa: F811
) -> None:
    engine = db.make_engine(db_url)
    with engine.begin() as connection:  # as JupyterHub keeps its schema's version
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('833da8570507')"))
    store = JobStore(db_url)
    store.list()
    with engine.connect() as connection:
        hub = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert db.current(connection) == db.head()
    assert hub == [("833da8570507",)]


def test_the_upgrade_command_upgrades_the_database_the_settings_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    fill_first_version(url)
    env = dict(os.environ, HUBFLOW_JOBS_DB_URL=url, HUBFLOW_DATA_DIR=str(tmp_path))
    for command, said in (("current", db.FIRST_REVISION), ("upgrade", db.head())):
        out = subprocess.run(
            f"python -m hubflow.jobs.db {command}",
            shell=True,
            env=dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (out.returncode, out.stdout.strip()) == (0, said), out.stderr
    assert len(JobStore(url, auto_upgrade=False).list()) == len(FIRST_VERSION_ROWS)
