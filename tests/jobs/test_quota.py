"""One quota module (profiles/quotas.py) for servers and jobs: a job's GPUs of its own (its rank
pods on Kubernetes) count against the same per-user `gpus` and per-group `group_gpus` as
servers', when a server starts and when a job is admitted or waits in the queue; a local job's
ranks share their server's GPUs and count nothing more."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hubflow.jobs.backend import JobFiles, Outcome
from hubflow.jobs.local import LocalBackend
from hubflow.jobs.models import parse_job_request
from hubflow.jobs.quota import Refusal, check_hard_limits
from hubflow.jobs.scheduler import Scheduler
from hubflow.jobs.store import JobRecord, JobStore, new_job_id
from hubflow.launcher.contract import JobState
from hubflow.profiles import (
    Holding,
    ProfileCatalog,
    QuotaError,
    Usage,
    check_server,
    effective_quota,
    job_wait_reason,
)
from hubflow.profiles.server_record import ServerRecord

GPU_QUOTA = {
    "default": {"servers": 1, "gpus": 0, "jobs": 2},
    "gpu-users": {"servers": 2, "gpus": 4, "jobs": 4, "job_gpus": 8, "group_gpus": 6},
}


def quota_of(groups: list[str]) -> Any:
    return effective_quota(GPU_QUOTA, groups)


ALICE = ("alice", frozenset({"gpu-users"}))
BOB = ("bob", frozenset({"gpu-users"}))


def test_usage_sums_servers_and_jobs_for_the_user_and_each_group() -> None:
    holdings = [
        Holding(*ALICE, gpus=1),
        Holding(*ALICE, gpus=2, server=False),
        Holding(*BOB, gpus=2, server=False),
        Holding("carol", frozenset({"students"}), gpus=1),
    ]
    usage = Usage.of(holdings, "alice", ["gpu-users"])
    assert (usage.servers, usage.jobs, usage.gpus) == (1, 1, 3)
    assert usage.group_servers == {"gpu-users": 1} and usage.group_gpus == {"gpu-users": 5}


def test_a_server_start_counts_the_users_job_gpus() -> None:
    quota = quota_of(["gpu-users"])
    jobs = [Holding(*ALICE, gpus=3, server=False)]
    check_server(quota, Usage.of(jobs, "alice", ["gpu-users"]), 1)
    with pytest.raises(QuotaError) as caught:
        check_server(quota, Usage.of(jobs, "alice", ["gpu-users"]), 2)
    assert str(caught.value) == (
        "quota: you already hold 3 GPUs and ask for 2 more, the limit for group 'gpu-users' is 4"
    )


def test_a_server_start_counts_the_groups_job_gpus() -> None:
    quota = quota_of(["gpu-users"])
    bobs = [Holding(*BOB, gpus=4, server=False), Holding(*BOB, gpus=1)]
    with pytest.raises(QuotaError) as caught:
        check_server(quota, Usage.of(bobs, "alice", ["gpu-users"]), 2)
    assert caught.value.limit == "group_gpus"
    assert "group 'gpu-users' already holds 5 GPUs and you ask for 2 more" in str(caught.value)


def test_a_job_waits_for_gpus_its_users_servers_and_jobs_hold() -> None:
    quota = quota_of(["gpu-users"])
    server = Holding(*ALICE, gpus=1)
    assert job_wait_reason(quota, Usage.of([server], *ALICE), 3) is None
    reason = job_wait_reason(quota, Usage.of([server, Holding(*ALICE, 2, False)], *ALICE), 2)
    assert reason == (
        "queued: you already hold 3 GPUs and ask for 2 more, the limit for group 'gpu-users' is 4"
    )
    group = job_wait_reason(quota, Usage.of([Holding(*BOB, 5, False)], *ALICE), 2)
    assert group == (
        "queued: group 'gpu-users' already holds 5 GPUs and you ask for 2 more, "
        "the group's limit is 6"
    )
    jobs = [Holding(*ALICE, 0, False)] * 4
    assert job_wait_reason(quota, Usage.of(jobs, *ALICE), 0) == (
        "queued: 4 of 4 concurrent jobs running, limit of group 'gpu-users'"
    )


def request(workers: int, gpus_per_worker: int) -> Any:
    body = {"payload": "eA==", "workers": workers, "gpus_per_worker": gpus_per_worker}
    return parse_job_request(body)


def test_a_job_over_the_gpu_quota_on_its_own_is_refused_where_it_holds_gpus() -> None:
    quota = quota_of(["gpu-users"])
    check_hard_limits(quota, request(3, 2))  # local: the ranks share the server's GPUs
    with pytest.raises(Refusal) as refused:
        check_hard_limits(quota, request(3, 2), new_gpus=6)
    assert refused.value.to_model() == {
        "status": 403,
        "message": "gpus_per_worker: quota: you ask for 6 GPUs, "
        "the limit for group 'gpu-users' is 4",
        "field": "gpus_per_worker",
        "quota": "gpus",
        "limit": 4,
        "group": "gpu-users",
    }
    groups = {"gpu-users": {"gpus": 16, "group_gpus": 6}}
    with pytest.raises(Refusal) as refused:
        check_hard_limits(effective_quota(groups, ["gpu-users"]), request(4, 2), new_gpus=8)
    assert (refused.value.quota, refused.value.limit, refused.value.group) == (
        "group_gpus",
        6,
        "gpu-users",
    )


class PodsBackend(JobFiles):
    """A backend whose ranks hold GPUs of their own and run until told otherwise: what the
    scheduler sees of the Kubeflow backend, without a cluster."""

    max_payload_bytes = 1000
    holds_gpus = True

    def admit(self, request: Any, server: Any) -> dict[str, Any]:
        return {}

    def launch(self, job: JobRecord) -> dict[str, Any]:
        return {}

    def adopt(self, job: JobRecord) -> dict[str, Any] | None:
        return None

    def poll(self, job: JobRecord) -> Outcome:
        return Outcome(JobState.RUNNING)

    async def cancel(self, job: JobRecord) -> None:
        pass


def gpu_job(user: str, workers: int, gpus_per_worker: int) -> JobRecord:
    return JobRecord(
        id=new_job_id(),
        user=user,
        framework="pytorch",
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        groups=["gpu-users"],
        gpus=[],
        workspace="/tmp",
        created=time.time(),
    )


async def test_the_scheduler_queues_gpu_jobs_over_quota_and_starts_them_when_gpus_free(
    tmp_path: Path,
) -> None:
    """alice's server holds 1 GPU; her 2-GPU job starts, her next 2-GPU job waits for GPUs
    (3 + 2 > 4) and starts once the server stops; bob's jobs count against the group."""
    catalog = ProfileCatalog(quotas=GPU_QUOTA)
    servers = [Holding(*ALICE, gpus=1)]

    async def hub_servers() -> list[Holding]:
        return list(servers)

    scheduler = Scheduler(
        JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}"),
        PodsBackend(tmp_path),
        lambda: catalog,
        hub_servers,
    )
    server = ServerRecord("/home/jovyan", [], {}, {"gpu_count": 1})
    assert await scheduler.admit(["gpu-users"], request(2, 1), server) == {}
    with pytest.raises(Refusal, match="quota: you ask for 6 GPUs"):
        await scheduler.admit(["gpu-users"], request(3, 2), server)
    first = scheduler.submit(gpu_job("alice", 2, 1), b"x")
    second = scheduler.submit(gpu_job("alice", 2, 1), b"x")
    assert first.state == JobState.PENDING.value
    assert second.state == JobState.QUEUED.value
    assert second.reason == (
        "queued: you already hold 3 GPUs and ask for 2 more, the limit for group 'gpu-users' is 4"
    )
    # The group: alice's server (1) and job (2), then bob's first job (2): 5 of 6.
    assert scheduler.submit(gpu_job("bob", 2, 1), b"x").state == JobState.PENDING.value
    bobs = scheduler.submit(gpu_job("bob", 2, 1), b"x")
    assert bobs.reason == (
        "queued: group 'gpu-users' already holds 5 GPUs and you ask for 2 more, "
        "the group's limit is 6"
    )
    servers.clear()  # alice stops her server: 4 held in the group, alice's second job fits
    await scheduler.refresh_servers()
    scheduler.tick()
    started = scheduler.store.get(second.id)
    assert started is not None and started.state == JobState.PENDING.value
    waiting = scheduler.store.get(bobs.id)
    assert waiting is not None and waiting.state == JobState.QUEUED.value
    assert "group 'gpu-users' already holds 6 GPUs" in waiting.reason


def test_local_jobs_share_their_servers_gpus_and_count_nothing_more(tmp_path: Path) -> None:
    scheduler = Scheduler(
        JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}"),
        LocalBackend(tmp_path),
        lambda: ProfileCatalog(quotas=GPU_QUOTA),
    )
    scheduler.servers = [Holding(*ALICE, gpus=4)]
    job = gpu_job("alice", 2, 2)
    assert scheduler.new_gpus(job) == 0
    assert scheduler.wait_reason(job) is None


def test_finished_jobs_are_forgotten_after_the_retention(tmp_path: Path) -> None:
    """Record, payload, logs and result go `retention` seconds after the job finished; jobs
    still running and recently finished ones stay; 0 keeps everything."""
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    backend = PodsBackend(tmp_path)
    scheduler = Scheduler(store, backend, lambda: ProfileCatalog(), retention=3600)
    old, recent, running = (gpu_job("alice", 1, 0) for _ in range(3))
    for job in (old, recent, running):
        scheduler.submit(job, b"payload")
        backend.channel(job.id).write_result(b"result")
    store.update(old.id, state=JobState.SUCCEEDED, finished=time.time() - 7200)
    store.update(recent.id, state=JobState.FAILED)
    Scheduler(store, backend, lambda: ProfileCatalog()).expire()  # no retention: all kept
    assert store.get(old.id) is not None
    scheduler.expire()
    assert store.get(old.id) is None and not backend.job_dir(old.id).exists()
    for kept in (recent, running):
        assert store.get(kept.id) is not None
        assert backend.channel(kept.id).read_result() == b"result"
