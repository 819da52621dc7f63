"""GPU quotas on Kubernetes count jobs: an over-quota user's GPU jobs wait (or, over the quota on
their own, are refused) in the jobs service on the real test cluster, and a server does not start
while the user's jobs' pods hold the GPUs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes.client
import pytest
from tornado import web

from hubflow.jobs.kubeflow.manifests import job_resource, placement_for, pod_metadata
from hubflow.jobs.store import JobRecord
from hubflow.launcher.client import JobsAPIError
from hubflow.launcher.payload import cell_payload
from hubflow.profiles import Holding
from hubflow.spawner.availability import job_holdings
from tests.kube.cluster.fixtures import Namespace
from tests.kube.cluster.jobs_fixtures import HubStandIn, JobsService
from tests.kube.cluster.spawner_fixtures import AgentNode
from tests.kube.test_hubflow_spawner import make_spawner
from tests.kube.test_jobs_kubeflow import wait_for
from tests.kube.test_lockdown_pods import job_server

SLEEP = "import time\ntime.sleep(300)\n"


def test_an_over_quota_users_gpu_jobs_wait_or_are_refused(
    jobs_service: Callable[[str], JobsService], stand_in: HubStandIn
) -> None:
    """gpu-users may hold 4 GPUs: alice's server holds 1, her first 2-GPU job 2 more; the next
    waits until the first is cancelled; a 5-GPU job could never start and is refused."""
    service = jobs_service("auto")
    alice = service.client(stand_in.add_user("alice", profile="gpu-1", groups=("gpu-users",)))
    payload = cell_payload(SLEEP, {}).dumps()
    first = alice.submit(payload, workers=2, gpus_per_worker=1, framework="python")
    assert first["state"] == "Pending"
    second = alice.submit(payload, workers=2, gpus_per_worker=1, framework="python")
    assert second["state"] == "Queued"
    assert second["reason"] == (
        "queued: you already hold 3 GPUs and ask for 2 more, the limit for group 'gpu-users' is 4"
    )
    with pytest.raises(JobsAPIError) as refused:
        alice.submit(payload, workers=5, gpus_per_worker=1, framework="python")
    assert (refused.value.status, refused.value.field) == (403, "gpus_per_worker")
    assert "quota: you ask for 5 GPUs, the limit for group 'gpu-users' is 4" in str(refused.value)
    alice.cancel(first["id"])
    wait_for(lambda: alice.get(second["id"])["state"] != "Queued", "the queued job to start")
    alice.cancel(second["id"])


def test_job_pods_tell_the_hub_whose_gpus_they_hold() -> None:
    job = JobRecord(
        id="0123456789ab", user="Alice@x", framework="pytorch", workers=2, groups=["b", "a"]
    )
    for kind in ("PyTorchJob", "TrainJob"):
        placement = placement_for(kind, job_server(), 1, "default", 600)
        job_resource(job, placement)  # the pods' metadata below is what each kind's pods get
        pod = {
            "metadata": {"name": "r0", **pod_metadata(job, placement)},
            "spec": {"containers": [{"resources": placement.resources}]},
            "status": {"phase": "Running"},
        }
        assert job_holdings([pod]) == [Holding("Alice@x", frozenset({"a", "b"}), 1, False)]
        assert job_holdings([{**pod, "status": {"phase": "Succeeded"}}]) == []


async def test_a_server_does_not_start_while_the_users_jobs_hold_the_gpus(
    kubespawner_ns: Namespace, agent_nodes: Callable[..., AgentNode]
) -> None:
    """Four GPUs held by alice's running job pod: her 1-GPU server is refused, with the words
    why; once the pod is gone (its GPUs freed), it is not."""
    cluster, ns = kubespawner_ns.cluster, kubespawner_ns.name
    node = agent_nodes("gpus", gpus=4)
    core = kubernetes.client.CoreV1Api(cluster.client(kubespawner_ns.hub_kubeconfig))
    job = JobRecord(
        id="0123456789ab", user="alice", framework="pytorch", workers=1, groups=["gpu-users"]
    )
    name = "hubflow-0123456789ab-master-0"
    pod: dict[str, Any] = {
        "metadata": {"name": name, **pod_metadata(job, placement_for("PyTorchJob", job_server(), 4, ns, 600))},
        "spec": {
            "containers": [
                {"name": "pytorch", "image": "x", "command": ["sleep", "300"],
                 "resources": {"limits": {"nvidia.com/gpu": "4"}}}
            ],
            "nodeSelector": node.selector, "tolerations": [node.toleration],
            "terminationGracePeriodSeconds": 1,
        },
    }  # fmt: skip
    core.create_namespaced_pod(ns, pod)
    cluster.wait_for(lambda: (cluster.get("pods", ns, name) or {})["status"]["phase"] == "Running")
    spawner = make_spawner({"profile": "gpu-1"}, ns)
    with pytest.raises(web.HTTPError) as refused:
        await spawner.load_user_options()
    assert refused.value.jupyterhub_message == (  # type: ignore[attr-defined]
        "quota: you already hold 4 GPUs and ask for 1 more, the limit for group 'gpu-users' is 4"
    )
    core.delete_namespaced_pod(name, ns)
    # A pod being stopped still holds its GPUs: they are free once it is gone.
    cluster.wait_for(lambda: cluster.get("pods", ns, name) is None, timeout=60)
    await spawner.load_user_options()
    assert spawner.resolved is not None and spawner.resolved.gpu_count == 1
