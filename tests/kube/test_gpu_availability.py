"""The spawn page's GPU availability in Kubernetes mode, from one shared watch over nodes and pods,
against the simulated cluster (nodes sim-cpu-1, sim-cpu-2 and sim-gpu-1 with 4 A100s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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
from tests.kube.sim import Simulator
from tests.kube.test_hubflow_spawner import make_spawner

A100 = "NVIDIA-A100-SXM4-80GB"
T = TypeVar("T")


def gpu_pod(name: str, gpus: int) -> dict[str, Any]:
    """A pod asking for `gpus` A100s, placed like hubflow places a GPU profile's pod."""
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
            "nodeSelector": {"nvidia.com/gpu.product": A100},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "terminationGracePeriodSeconds": 1,
        },
    }


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


@pytest.fixture
async def core(k8s_cluster: Simulator) -> AsyncIterator[aclient.CoreV1Api]:
    configuration = aclient.Configuration()
    await aconfig.load_kube_config(
        config_file=str(k8s_cluster.kubeconfig_path), client_configuration=configuration
    )
    async with aclient.ApiClient(configuration) as api:
        yield aclient.CoreV1Api(api)


async def test_free_gpus_follow_pods_as_they_are_bound_and_deleted(
    core: aclient.CoreV1Api, k8s_cluster: Simulator
) -> None:
    gpus = ClusterGpus(core).start()
    try:
        assert await gpus.wait_loaded(30)
        assert gpus.availability() == {A100: (4, 4)}

        await core.create_namespaced_pod("default", gpu_pod("two", 2))
        await until(lambda: gpus.availability() == {A100: (2, 4)})
        # Three more do not fit: the pod stays pending and holds nothing.
        await core.create_namespaced_pod("default", gpu_pod("three", 3))
        await asyncio.sleep(0.5)
        assert gpus.availability() == {A100: (2, 4)}
        pending = await core.read_namespaced_pod("three", "default")
        assert pending.spec.node_name is None

        # Deleting the first frees its GPUs; the scheduler then binds the pending one.
        await core.delete_namespaced_pod("two", "default", grace_period_seconds=0)
        await until(lambda: gpus.availability() == {A100: (1, 4)})
        await core.delete_namespaced_pod("three", "default", grace_period_seconds=0)
        await until(lambda: gpus.availability() == {A100: (4, 4)})
    finally:
        await gpus.stop()


async def test_a_lost_watch_version_is_relisted(
    core: aclient.CoreV1Api, k8s_cluster: Simulator
) -> None:
    gpus = ClusterGpus(core, watch_seconds=1).start()
    try:
        assert await gpus.wait_loaded(30)
        pods_listed = k8s_cluster.inject("list", "pods", times=1000)
        # The next watch of pods is told its version is gone (410), as after a compaction.
        k8s_cluster.inject("watch", "pods", gone=True)
        await until(lambda: pods_listed.hits >= 1, timeout=30)
        await core.create_namespaced_pod("default", gpu_pod("after", 1))
        await until(lambda: gpus.availability() == {A100: (3, 4)})
        await core.delete_namespaced_pod("after", "default", grace_period_seconds=0)
    finally:
        await gpus.stop()


@pytest.mark.usefixtures("kubespawner_config")
async def test_page_views_share_one_watch(k8s_cluster: Simulator) -> None:
    node_lists = k8s_cluster.inject("list", "nodes", times=1000)
    try:
        views = [await shared_cluster_gpus(lambda: shared_client("CoreV1Api")) for _ in range(20)]
        assert views == [{A100: (4, 4)}] * 20
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


@pytest.mark.usefixtures("kubespawner_config")
async def test_kubernetes_spawn_page_shows_free_gpus_and_why_a_profile_cannot_start() -> None:
    spawner = make_spawner({})
    core = shared_client("CoreV1Api")
    try:
        page = await spawner.get_options_form()
        assert "NVIDIA A100 SXM4 80GB: 4 of 4 free" in page
        assert "Cannot start now" not in page
        await core.create_namespaced_pod("default", gpu_pod("all-four", 4))
        page = await until_async(
            spawner.get_options_form, lambda page: "0 of 4 free" in page, timeout=30
        )
        assert "Cannot start now: only 0 of 4 A100 GPUs are free, it needs 1" in page
        await core.delete_namespaced_pod("all-four", "default", grace_period_seconds=0)
    finally:
        await stop_shared_cluster_gpus()
