"""Job records persist in the database and survive a new store (a restarted service), on SQLite
and on PostgreSQL; one job per user and client key; the schema is made once when many processes
start at once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from hubflow.jobs.store import DuplicateKey, JobRecord, JobStore, new_job_id
from hubflow.launcher.contract import JobState
from tests.helpers.postgres import db_url  # noqa: F401 (a fixture)


def make_job(
    user: str, state: JobState = JobState.QUEUED, client_key: str | None = None
) -> JobRecord:
    return JobRecord(
        id=new_job_id(),
        user=user,
        framework="pytorch",
        workers=2,
        workspace="/tmp",
        state=state.value,
        created=time.time(),
        client_key=client_key,
    )


def test_jobs_survive_a_new_store_and_list_by_user_and_state(db_url: str) -> None:  # noqa: F811
    store = JobStore(db_url)
    alices = store.add(make_job("alice"))
    store.add(make_job("bob", JobState.RUNNING))
    store.update(alices.id, state=JobState.FAILED, failing_rank=1, error={"message": "boom"})

    again = JobStore(db_url)
    job = again.get(alices.id)
    assert job is not None
    assert (job.state, job.failing_rank, job.error) == ("Failed", 1, {"message": "boom"})
    assert job.finished is not None
    assert (job.launched, job.stopping) == (False, False)
    assert [j.user for j in again.list(states=[JobState.RUNNING])] == ["bob"]
    assert [j.id for j in again.list(user="alice")] == [alices.id]
    model = job.to_model()
    assert model["state"] == "Failed" and model["finished"].endswith("Z")


def test_a_client_key_names_one_job_per_user(db_url: str) -> None:  # noqa: F811
    store = JobStore(db_url)
    first = store.add(make_job("alice", client_key="k1"))
    with pytest.raises(DuplicateKey):
        store.add(make_job("alice", client_key="k1"))
    store.add(make_job("bob", client_key="k1"))  # another user's key space
    store.add(make_job("alice"))  # no key: never a duplicate
    store.add(make_job("alice"))
    found = store.by_client_key("alice", "k1")
    assert found is not None and found.id == first.id
    assert len(store.list(user="alice")) == 3
    assert store.by_client_key("alice", "k2") is None


def test_many_processes_opening_a_fresh_database_at_once_make_one_schema(
    db_url: str,  # noqa: F811
) -> None:
    code = "import sys\nfrom hubflow.jobs.store import JobStore\nJobStore(sys.argv[1]).list()\n"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, "\n".join(errors)
    store = JobStore(db_url)
    store.add(make_job("alice"))
    assert len(store.list()) == 1
