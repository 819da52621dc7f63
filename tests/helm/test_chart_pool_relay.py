"""The relay port of warm pools' ranks on Kubernetes, by the chart's NetworkPolicies and the
pool job's own (tests/helm/netpol.py evaluates them): only the jobs service, in the hub's pod,
reaches it; not users' servers, not other jobs' ranks, not other pods; and the ranks still
reach each other (the process group) and nothing of users' servers."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hubflow.jobs.kubeflow.manifests import Placement, job_network_policy, pod_metadata
from hubflow.jobs.store import JobRecord
from hubflow.launcher.pool_link import RELAY_PORT
from tests.helm.chart import NAMESPACE, find, render, with_namespace
from tests.helm.netpol import Address, Pod, allowed

USERS_NS = NAMESPACE  # the chart's default: users' pods in the release's namespace
SERVER_LABELS = {"component": "singleuser-server", "app.kubernetes.io/managed-by": "kubespawner"}


def _pool_job(job_id: str) -> JobRecord:
    return JobRecord(
        id=job_id, user="alice", server_name="", name="", framework="pytorch", workers=2,
        gpus_per_worker=0, gpus=[], groups=[], workspace="/home/jovyan", environment={},
        spec={}, state="Pending", created=time.time(),
    )  # fmt: skip


def _placement(warm_pool: bool) -> Placement:
    return Placement(
        kind="PyTorchJob", namespace=USERS_NS, image="python", pvc_name="claim-alice",
        mount_path="/home/jovyan", resources={}, warm_pool=warm_pool,
    )  # fmt: skip


def _own_policy(job: JobRecord, placement: Placement) -> dict[str, Any]:
    """The NetworkPolicy the jobs service makes with the job (its ranks reach each other)."""
    owner = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
             "metadata": {"name": f"hubflow-{job.id}", "uid": "u1"}}  # fmt: skip
    return job_network_policy(job, placement, owner)


class Pools:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        pool, other, batch = (
            _pool_job(i) for i in ("0123456789ab", "ba9876543210", "b47c4b47c4b4")
        )
        pooled, batched = _placement(warm_pool=True), _placement(warm_pool=False)
        self.policies = [o for o in with_namespace(objects) if o["kind"] == "NetworkPolicy"]
        self.policies += [
            _own_policy(pool, pooled),
            _own_policy(other, pooled),
            _own_policy(batch, batched),
        ]
        hub = find(objects, "Deployment", "-hub")["spec"]["template"]["metadata"]["labels"]
        self.hub = Pod(NAMESPACE, hub, "10.1.0.2")
        self.rank0 = Pod(USERS_NS, pod_metadata(pool, pooled)["labels"], "10.2.0.20")
        self.rank1 = Pod(USERS_NS, pod_metadata(pool, pooled)["labels"], "10.2.0.21")
        self.other_job = Pod(USERS_NS, pod_metadata(other, pooled)["labels"], "10.2.0.30")
        self.batch_rank = Pod(USERS_NS, pod_metadata(batch, batched)["labels"], "10.2.0.40")
        self.server = Pod(USERS_NS, SERVER_LABELS, "10.2.0.10")
        self.stranger = Pod("default", {"app": "anything"}, "10.3.0.1")

    def can(self, source: Pod | Address, target: Pod | Address, port: int) -> bool:
        return allowed(self.policies, source, target, port)


@pytest.fixture(scope="module")
def pools() -> Pools:
    return Pools(render())


def test_only_the_jobs_service_reaches_a_pools_relay_port(pools: Pools) -> None:
    assert pools.can(pools.hub, pools.rank0, RELAY_PORT)
    assert pools.can(pools.hub, pools.rank1, RELAY_PORT)
    for outsider in (pools.server, pools.other_job, pools.stranger, Address("203.0.113.9")):
        assert not pools.can(outsider, pools.rank0, RELAY_PORT), outsider
    assert not pools.can(pools.hub, pools.rank0, 8888)  # the relay port only
    # a batch job's rank (no warm loop) keeps the port closed, whatever its code listens on
    assert not pools.can(pools.hub, pools.batch_rank, RELAY_PORT)


def test_a_pools_ranks_reach_each_other_and_no_users_server(pools: Pools) -> None:
    assert pools.can(pools.rank1, pools.rank0, 29500)  # the process group
    assert not pools.can(pools.rank0, pools.server, 8888)
    assert not pools.can(pools.rank0, pools.other_job, 29500)
    assert not pools.can(pools.rank0, pools.hub, 8081)


def test_the_relay_policy_goes_with_the_jobs_policy() -> None:
    names = [
        o["metadata"]["name"]
        for o in render({"jobs": {"networkPolicy": {"enabled": False}}})
        if o["kind"] == "NetworkPolicy"
    ]
    assert names and not any(n.endswith(("-jobs", "-pool-relay")) for n in names)
