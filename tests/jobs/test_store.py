"""Job records persist in the database and survive a new store (a restarted service)."""

from __future__ import annotations

import time
from pathlib import Path

from hubflow.jobs.store import Job, JobStore, new_job_id
from hubflow.launcher.contract import JobState


def make_job(user: str, state: JobState = JobState.QUEUED) -> Job:
    return Job(
        id=new_job_id(),
        user=user,
        framework="pytorch",
        workers=2,
        workspace="/tmp",
        state=state.value,
        created=time.time(),
    )


def test_jobs_survive_a_new_store_and_list_by_user_and_state(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    store = JobStore(url)
    alices = store.add(make_job("alice"))
    store.add(make_job("bob", JobState.RUNNING))
    store.update(alices.id, state=JobState.FAILED, failing_rank=1, error={"message": "boom"})

    again = JobStore(url)
    job = again.get(alices.id)
    assert job is not None
    assert (job.state, job.failing_rank, job.error) == ("Failed", 1, {"message": "boom"})
    assert job.finished is not None
    assert [j.user for j in again.list(states=[JobState.RUNNING])] == ["bob"]
    assert [j.id for j in again.list(user="alice")] == [alices.id]
    model = job.to_model()
    assert model["state"] == "Failed" and model["finished"].endswith("Z")
