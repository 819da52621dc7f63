"""Warm pools whose pods hold GPUs of their own (Kubernetes mode) count against the GPU quotas
of batch jobs too: while alice's 3-GPU pool lives, her 2-GPU job waits; once the pool has ended,
it starts (the scheduler asks the pool manager, as the jobs service wires them)."""

from __future__ import annotations

from pathlib import Path

from hubflow.hub.settings import JobsSettings
from hubflow.jobs.pools import Pool, PoolManager
from hubflow.jobs.scheduler import Scheduler
from hubflow.jobs.store import JobStore
from hubflow.launcher.contract import JobState
from hubflow.profiles import Holding, ProfileCatalog
from tests.jobs.test_quota import ALICE, GPU_QUOTA, PodsBackend, gpu_job


async def test_a_pools_own_gpus_keep_a_batch_job_waiting_until_the_pool_ends(
    tmp_path: Path,
) -> None:
    catalog = ProfileCatalog(quotas=GPU_QUOTA)
    backend = PodsBackend(tmp_path)

    async def hub_servers() -> list[Holding]:
        return [Holding(*ALICE, gpus=0)]

    scheduler = Scheduler(JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}"), backend,
                          lambda: catalog, hub_servers)  # fmt: skip
    pools = PoolManager(backend, JobsSettings())  # type: ignore[arg-type] (holdings only)
    scheduler.other_holdings = pools.holdings
    pool = Pool(job=gpu_job("alice", 3, 1), key_hash="", idle_timeout=600)
    pools.pools[pool.id] = pool
    await scheduler.refresh_servers()

    job = scheduler.submit(gpu_job("alice", 2, 1), b"x")
    assert job.state == JobState.QUEUED.value
    assert job.reason == (
        "queued: you already hold 3 GPUs and ask for 2 more, the limit for group 'gpu-users' is 4"
    )
    pool.ended.set()  # stopped or broken: its pods are deleted
    scheduler.tick()
    started = scheduler.store.get(job.id)
    assert started is not None and started.state == JobState.PENDING.value
