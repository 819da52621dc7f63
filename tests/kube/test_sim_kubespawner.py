"""KubeSpawner 7.1 (kubernetes_asyncio) against the simulator: its reflectors, and a whole spawn."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import aiohttp
import pytest
from jupyterhub.objects import Hub
from kubernetes import client
from kubespawner import KubeSpawner
from kubespawner.spawner import EventReflector, PodReflector

from tests.kube.sim import Simulator

#: A stand-in single-user server: serves HTTP on all interfaces at the port of JUPYTERHUB_SERVICE_URL.
SERVER = "import os, urllib.parse, http.server as h; port = urllib.parse.urlparse(os.environ['JUPYTERHUB_SERVICE_URL']).port; h.ThreadingHTTPServer(('0.0.0.0', port), h.SimpleHTTPRequestHandler).serve_forever()"


async def wait_until(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_pod_and_event_reflectors_keep_in_sync(
    k8s_cluster: Simulator, kubespawner_config: None
) -> None:
    pods = PodReflector(
        namespace="default", labels={"component": "singleuser-server"}, timeout_seconds=2
    )
    events = EventReflector(namespace="default", timeout_seconds=2)
    await pods.start()
    await events.start()
    try:
        v1 = client.CoreV1Api(k8s_cluster.client())
        container = {"name": "c", "image": "python:3.11", "command": ["sleep", "60"]}
        for name, component in (("jupyter-alice", "singleuser-server"), ("other", "other")):
            labels = {"component": component}
            v1.create_namespaced_pod(
                "default",
                {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [container]}},
            )
        await wait_until(
            lambda: (
                pods.pods.get("default/jupyter-alice", {}).get("status", {}).get("phase")
                == "Running"
            )
        )
        assert list(pods.pods) == ["default/jupyter-alice"]
        await wait_until(
            lambda: (
                "Started"
                in {
                    e["reason"]
                    for e in events.events
                    if e["involvedObject"]["name"] == "jupyter-alice"
                }
            )
        )
        await asyncio.sleep(2.5)  # past timeout_seconds: the reflector re-lists and re-watches
        v1.delete_namespaced_pod("jupyter-alice", "default", grace_period_seconds=1)
        await wait_until(lambda: "default/jupyter-alice" not in pods.pods)
    finally:
        await pods.stop()
        await events.stop()


async def test_reflector_survives_a_cut_watch_and_410(
    k8s_cluster: Simulator, kubespawner_config: None
) -> None:
    pods = PodReflector(namespace="default", timeout_seconds=30)
    await pods.start()
    try:
        k8s_cluster.inject("watch", "pods", cut_after=0)
        k8s_cluster.inject("watch", "pods", gone=True)
        v1 = client.CoreV1Api(k8s_cluster.client())
        v1.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "i", "command": ["sleep", "60"]}]},
            },
        )
        await wait_until(lambda: not k8s_cluster.faults.pending, 30)
        v1.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"seen": "after-faults"}}})
        await wait_until(
            lambda: (
                pods.pods.get("default/p", {}).get("metadata", {}).get("labels")
                == {"seen": "after-faults"}
            ),
            30,
        )
    finally:
        await pods.stop()


async def test_kubespawner_starts_a_reachable_server_and_stops_it(
    k8s_cluster: Simulator, kubespawner_config: None
) -> None:
    user = SimpleNamespace(
        name="alice",
        id=1,
        url="/user/alice/",
        admin=False,
        groups=[],
        settings={},
        spawners={},
        escaped_name="alice",
    )
    spawner = KubeSpawner(
        _mock=True, user=user, hub=Hub(), namespace="default", image="python:3.11",
        cmd=[sys.executable, "-c", SERVER], port=8888, start_timeout=30, http_timeout=30,
        storage_pvc_ensure=True, pvc_name_template="claim-{username}", storage_capacity="1Gi",
        volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}],
        volume_mounts=[{"name": "home", "mountPath": "/home/jovyan"}],
    )  # fmt: skip
    spawner.api_token = "token"
    url = await spawner.start()
    pod = k8s_cluster.get("pods", "default", "jupyter-alice")
    assert pod and url == f"http://{pod['status']['podIP']}:8888"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url + "/") as response:
                    assert response.status == 200
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the spawned server never answered")
    assert await spawner.poll() is None
    assert (
        k8s_cluster.get("persistentvolumeclaims", "default", "claim-alice")["status"]["phase"]
        == "Bound"
    )
    await spawner.stop()
    assert k8s_cluster.get("pods", "default", "jupyter-alice") is None
    assert await spawner.poll() == 1
