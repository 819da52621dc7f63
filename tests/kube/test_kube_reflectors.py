"""The hub's shared watches of its server pods and of pod events (KubeSpawner's reflectors, as
hubflow narrows them: server pods only, kept without their environment; a bounded event cache) on
the real test cluster, as the hub's ServiceAccount: they follow pods through re-watches and
deletion, and recover from a cut watch and a resourceVersion the API server no longer has."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubernetes.client import CoreV1Api

from hubflow.spawner.event_cache import BoundedEventReflector
from hubflow.spawner.kubernetes import SERVER_POD_LABELS
from hubflow.spawner.pod_cache import EnvlessPodReflector
from tests.kube.cluster.faultproxy import FaultProxy
from tests.kube.cluster.fixtures import Namespace

SERVER_LABELS = {**SERVER_POD_LABELS, "component": "singleuser-server"}


async def wait_until(predicate: Callable[[], Any], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    container = {"name": "c", "image": "python:3.11", "command": ["sleep", "60"]}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
    }


async def test_the_hubs_pod_and_event_watches_keep_in_sync(kubespawner_ns: Namespace) -> None:
    ns = kubespawner_ns.name
    pods = EnvlessPodReflector(namespace=ns, labels=SERVER_LABELS, timeout_seconds=2)
    events = BoundedEventReflector(namespace=ns, timeout_seconds=2)
    await pods.start()
    await events.start()
    try:
        core = CoreV1Api(kubespawner_ns.cluster.client(kubespawner_ns.hub_kubeconfig))
        core.create_namespaced_pod(ns, pod("jupyter-alice", SERVER_LABELS))
        core.create_namespaced_pod(ns, pod("other", {"component": "other"}))
        await wait_until(
            lambda: (
                pods.pods.get(f"{ns}/jupyter-alice", {}).get("status", {}).get("phase") == "Running"
            )
        )
        assert list(pods.pods) == [f"{ns}/jupyter-alice"]
        await wait_until(
            lambda: (
                {"Scheduled", "Started"}
                <= {
                    e["reason"]
                    for e in events.events
                    if e["involvedObject"]["name"] == "jupyter-alice"
                }
            )
        )
        await asyncio.sleep(2.5)  # past timeout_seconds: the reflectors list and watch again
        core.delete_namespaced_pod("jupyter-alice", ns)
        await wait_until(lambda: f"{ns}/jupyter-alice" not in pods.pods)
    finally:
        await pods.stop()
        await events.stop()


async def test_the_hubs_pod_watch_survives_a_cut_watch_and_410(
    kubespawner_via_proxy: FaultProxy, kube_ns: Namespace
) -> None:
    proxy, ns = kubespawner_via_proxy, kube_ns.name
    pods = EnvlessPodReflector(namespace=ns, labels=SERVER_LABELS, timeout_seconds=30)
    await pods.start()
    try:
        # The watch is cut; the next is cut before its first event; the one after is told
        # its resourceVersion is gone (410), as after a compaction: the reflector lists again.
        listed = proxy.inject("list", "pods", times=1000)
        rules = [
            proxy.inject("watch", "pods", cut_after=0),
            proxy.inject("watch", "pods", gone=True),
        ]
        await wait_until(lambda: proxy.cut_watches("pods") == 1)  # once it is open
        await wait_until(lambda: all(rule.hits == 1 for rule in rules) and listed.hits >= 1)
        CoreV1Api(kube_ns.cluster.client(kube_ns.hub_kubeconfig)).create_namespaced_pod(
            ns, pod("jupyter-p", SERVER_LABELS)
        )
        # a change only the admin may make (the hub's Role has no patch on pods)
        CoreV1Api(kube_ns.cluster.client()).patch_namespaced_pod(
            "jupyter-p", ns, {"metadata": {"labels": {"seen": "after-faults"}}}
        )
        await wait_until(
            lambda: (
                pods.pods.get(f"{ns}/jupyter-p", {}).get("metadata", {}).get("labels", {})
                == {**SERVER_LABELS, "seen": "after-faults"}
            )
        )
    finally:
        await pods.stop()
