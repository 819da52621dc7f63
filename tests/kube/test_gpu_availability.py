"""The spawn page's GPU availability in Kubernetes mode, from one shared watch over nodes and pods,
on the real test cluster as the hub's ServiceAccount. Each test has a Node of its own with 4 H100s
(a GPU type no other node has), made for it and run by the node agent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig
from kubespawner.clients import shared_client

from hubflow.spawner.availability import (
    ClusterGpus,
    gpu_availability,
    shared_cluster_gpus,
    stop_shared_cluster_gpus,
)
from tests.kube.cluster.faultproxy import FaultProxy
from tests.kube.cluster.fixtures import Namespace
from tests.kube.cluster.spawner_fixtures import AgentNode
from tests.kube.test_hubflow_spawner import make_spawner

H100 = "NVIDIA-H100-80GB-HBM3"
PROFILES = str(Path(__file__).parent / "profiles" / "h100.yaml")
T = TypeVar("T")


@pytest.fixture
def h100_node(agent_nodes: Callable[..., AgentNode]) -> AgentNode:
    """A GPU node as the NVIDIA device plugin and feature discovery label one: 4 H100s."""
    labels = {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": H100,
              "nvidia.com/gpu.count": "4"}  # fmt: skip
    return agent_nodes("h100", cpu="16", memory="64Gi", gpus=4, labels=labels)


def gpu_pod(name: str, gpus: int, node: AgentNode) -> dict[str, Any]:
    """A pod asking for `gpus` H100s, placed like hubflow places a GPU profile's pod (and
    tolerating the test node's own taint)."""
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sleep", "600"],
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
            "nodeSelector": {"nvidia.com/gpu.product": H100},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                node.toleration,
            ],
            "terminationGracePeriodSeconds": 1,
        },
    }


def h100s(gpus: ClusterGpus) -> tuple[int, int] | None:
    """(free, total) H100s now."""
    return (gpus.availability() or {}).get(H100)


async def until(check: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll `check()` until it is truthy (the watch applies events in the background)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)
    return value


async def until_async(
    read: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float = 30
) -> T:
    """Read again until `check` accepts what was read."""
    deadline = time.monotonic() + timeout
    while not check(value := await read()):
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.1)
    return value


async def hub_core(kubeconfig: Path) -> AsyncIterator[aclient.CoreV1Api]:
    configuration = aclient.Configuration()
    await aconfig.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    async with aclient.ApiClient(configuration) as api:
        yield aclient.CoreV1Api(api)


@pytest.fixture
async def core(kube_ns: Namespace) -> AsyncIterator[aclient.CoreV1Api]:
    """The hub's client (its ServiceAccount: the chart's cluster-wide read of nodes and pods)."""
    async for api in hub_core(kube_ns.hub_kubeconfig):
        yield api


@pytest.fixture
async def proxied_core(hub_fault_proxy: FaultProxy) -> AsyncIterator[aclient.CoreV1Api]:
    """The hub's client, through the fault proxy."""
    async for api in hub_core(hub_fault_proxy.kubeconfig_path):
        yield api


def unschedulable(pod: Any) -> bool:
    """The real scheduler found no node for the pod."""
    return any(
        c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
        for c in (pod.status.conditions or [])
    )


async def test_free_gpus_follow_pods_as_they_are_bound_and_deleted(
    core: aclient.CoreV1Api, kube_ns: Namespace, h100_node: AgentNode
) -> None:
    ns = kube_ns.name
    gpus = ClusterGpus(core).start()
    try:
        assert await gpus.wait_loaded(30)
        assert h100s(gpus) == (4, 4)

        await core.create_namespaced_pod(ns, gpu_pod("two", 2, h100_node))
        await until(lambda: h100s(gpus) == (2, 4))
        # Three more do not fit: the scheduler leaves the pod pending, and it holds nothing.
        await core.create_namespaced_pod(ns, gpu_pod("three", 3, h100_node))
        pending = await until_async(lambda: core.read_namespaced_pod("three", ns), unschedulable)
        assert pending.spec.node_name is None
        assert h100s(gpus) == (2, 4)

        # Deleting the first frees its GPUs; the scheduler then binds the pending one.
        await core.delete_namespaced_pod("two", ns, grace_period_seconds=0)
        await until(lambda: h100s(gpus) == (1, 4))
        bound = await core.read_namespaced_pod("three", ns)
        assert bound.spec.node_name == h100_node.name
        await core.delete_namespaced_pod("three", ns, grace_period_seconds=0)
        await until(lambda: h100s(gpus) == (4, 4))
    finally:
        await gpus.stop()


async def test_a_lost_watch_version_is_relisted(
    proxied_core: aclient.CoreV1Api,
    hub_fault_proxy: FaultProxy,
    kube_ns: Namespace,
    h100_node: AgentNode,
) -> None:
    core, ns = proxied_core, kube_ns.name
    gpus = ClusterGpus(core, watch_seconds=1).start()
    try:
        assert await gpus.wait_loaded(30)
        pods_listed = hub_fault_proxy.inject("list", "pods", times=1000)
        # The next watch of pods is told its version is gone (410), as after a compaction.
        gone = hub_fault_proxy.inject("watch", "pods", gone=True)
        await until(lambda: pods_listed.hits >= 1, timeout=30)
        assert gone.hits == 1
        await core.create_namespaced_pod(ns, gpu_pod("after", 1, h100_node))
        await until(lambda: h100s(gpus) == (3, 4))
        await core.delete_namespaced_pod("after", ns, grace_period_seconds=0)
    finally:
        await gpus.stop()


async def test_page_views_share_one_watch(
    kubespawner_via_proxy: FaultProxy, h100_node: AgentNode
) -> None:
    node_lists = kubespawner_via_proxy.inject("list", "nodes", times=1000)
    try:
        views = [await shared_cluster_gpus(lambda: shared_client("CoreV1Api")) for _ in range(20)]
        assert views[0] is not None and views[0][H100] == (4, 4)
        assert views == [views[0]] * 20
        assert node_lists.hits == 1, "each page view listed the nodes again"
    finally:
        await stop_shared_cluster_gpus()


def test_counting_rules() -> None:
    node = {
        "metadata": {"name": "n", "labels": {"nvidia.com/gpu.product": "T4"}},
        "status": {
            "allocatable": {"nvidia.com/gpu": "4", "amd.com/gpu": "2"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }

    def pod(phase: str, containers: list[int], init: list[int] = ()) -> dict[str, Any]:
        def c(n: int) -> dict[str, Any]:
            return {"resources": {"requests": {"nvidia.com/gpu": str(n)}}}

        return {
            "spec": {
                "nodeName": "n",
                "containers": [c(n) for n in containers],
                "initContainers": [c(n) for n in init],
            },
            "status": {"phase": phase},
        }

    pods = [pod("Running", [1, 1]), pod("Pending", [0], init=[1]), pod("Succeeded", [2])]
    # 2 + 1 held (the finished pod holds nothing); AMD GPUs without a product label count
    # under their resource name.
    assert gpu_availability([node], pods) == {"T4": (1, 4), "amd.com/gpu": (2, 2)}
    # GPUs of a node that is not ready, or cordoned, are not free.
    not_ready = dict(node, status={**node["status"], "conditions": []})
    assert gpu_availability([not_ready], [])["T4"] == (0, 4)
    cordoned = dict(node, spec={"unschedulable": True})
    assert gpu_availability([cordoned], [])["T4"] == (0, 4)


async def test_kubernetes_spawn_page_shows_free_gpus_and_why_a_profile_cannot_start(
    kubespawner_ns: Namespace, h100_node: AgentNode
) -> None:
    ns = kubespawner_ns.name
    spawner = make_spawner({}, ns, [PROFILES])
    core = shared_client("CoreV1Api")
    try:
        page = await spawner.get_options_form()
        assert "NVIDIA H100 80GB HBM3: 4 of 4 free" in page
        assert "Cannot start now" not in page
        await core.create_namespaced_pod(ns, gpu_pod("all-four", 4, h100_node))
        page = await until_async(
            spawner.get_options_form, lambda page: "0 of 4 free" in page, timeout=30
        )
        assert "Cannot start now: only 0 of 4 H100 GPUs are free, it needs 1" in page
        await core.delete_namespaced_pod("all-four", ns, grace_period_seconds=0)
    finally:
        await stop_shared_cluster_gpus()
