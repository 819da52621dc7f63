"""Watches from the real sync and asyncio clients: resourceVersion, timeouts, selectors, 410."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig
from kubernetes_asyncio import watch as awatch

from tests.kube.sim import Simulator


def cm(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}}


def test_sync_watch_from_resource_version_ends_at_timeout(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_config_map("default", cm("before"))
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    v1.create_namespaced_config_map("default", cm("after"))
    v1.patch_namespaced_config_map("after", "default", {"data": {"k": "v"}})
    v1.delete_namespaced_config_map("after", "default")
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]


def test_sync_watch_without_resource_version_starts_with_current_objects(
    k8s_cluster: Simulator,
) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_config_map("default", cm("one", app="x"))
    v1.create_namespaced_config_map("default", cm("two", app="y"))
    stream = watch.Watch().stream(
        v1.list_namespaced_config_map, "default", label_selector="app=x", timeout_seconds=1
    )
    assert [(e["type"], e["object"].metadata.name) for e in stream] == [("ADDED", "one")]


def test_watch_true_spellings_are_accepted(k8s_cluster: Simulator) -> None:
    for spelling in ("true", "True", "1"):
        code, _ = k8s_cluster.request(
            "GET", f"/api/v1/namespaces?watch={spelling}&timeoutSeconds=0"
        )
        assert code == 200


def test_selector_watch_sees_objects_enter_and_leave(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    rv = v1.create_namespaced_config_map("default", cm("x", app="a")).metadata.resource_version
    v1.patch_namespaced_config_map("x", "default", {"metadata": {"labels": {"app": "b"}}})
    v1.patch_namespaced_config_map("x", "default", {"metadata": {"labels": {"app": "a"}}})
    stream = watch.Watch().stream(
        v1.list_namespaced_config_map,
        "default",
        label_selector="app=a",
        resource_version=rv,
        timeout_seconds=1,
    )
    assert [e["type"] for e in stream] == ["DELETED", "ADDED"]


def test_live_events_reach_a_running_watch(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    timer = threading.Timer(0.3, lambda: v1.create_namespaced_config_map("default", cm("late")))
    timer.start()
    w = watch.Watch()
    for event in w.stream(
        v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5
    ):
        assert (event["type"], event["object"].metadata.name) == ("ADDED", "late")
        w.stop()
    timer.join()


def test_expired_resource_version_is_410(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    v1.create_namespaced_config_map("default", cm("a"))
    k8s_cluster.compact()
    with pytest.raises(ApiException) as error:
        list(
            watch.Watch().stream(
                v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
            )
        )
    assert error.value.status == 410


def test_history_window_expires_old_versions(tmp_path) -> None:
    with Simulator(tmp_path, nodes=[], history=5, crds=[], preload=[]) as sim:
        v1 = client.CoreV1Api(sim.client())
        rv = v1.list_namespaced_config_map("default").metadata.resource_version
        for i in range(10):
            v1.create_namespaced_config_map("default", cm(f"c{i}"))
        code, _ = sim.request(
            "GET",
            f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1",
        )
        assert code == 200
        with pytest.raises(ApiException) as error:
            list(
                watch.Watch().stream(
                    v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
                )
            )
        assert error.value.status == 410 and "Expired" in error.value.reason


def test_bookmarks_when_allowed(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    stream = watch.Watch().stream(
        v1.list_namespaced_config_map,
        "default",
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=2,
    )
    bookmarks = [e for e in stream if e["type"] == "BOOKMARK"]
    assert bookmarks and bookmarks[0]["raw_object"]["metadata"]["resourceVersion"] == rv


async def test_asyncio_client_lists_and_watches(k8s_cluster: Simulator) -> None:
    async with aclient.ApiClient(await _async_config(k8s_cluster)) as api:
        v1 = aclient.CoreV1Api(api)
        created = await v1.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": "p", "labels": {"app": "p"}},
                "spec": {"containers": [{"name": "c", "image": "i", "command": ["sleep", "30"]}]},
            },
        )
        listed = await v1.list_namespaced_pod("default", label_selector="app=p")
        assert [p.metadata.name for p in listed.items] == ["p"]
        phases = []
        w = awatch.Watch()
        async with w.stream(
            v1.list_namespaced_pod,
            "default",
            field_selector="metadata.name=p",
            resource_version=created.metadata.resource_version,
            timeout_seconds=10,
        ) as stream:
            async for event in stream:
                phases.append(event["object"].status.phase)
                if event["object"].status.phase == "Running":
                    break
        assert phases[0] == "Pending" and phases[-1] == "Running"
        await v1.delete_namespaced_pod("p", "default", grace_period_seconds=1)


async def test_asyncio_watch_gets_410_for_compacted_version(k8s_cluster: Simulator) -> None:
    async with aclient.ApiClient(await _async_config(k8s_cluster)) as api:
        v1 = aclient.CoreV1Api(api)
        rv = (await v1.list_namespaced_config_map("default")).metadata.resource_version
        await v1.create_namespaced_config_map("default", cm("a"))
        k8s_cluster.compact()
        with pytest.raises(aclient.ApiException) as error:
            async with awatch.Watch().stream(
                v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
            ) as stream:
                async for _ in stream:
                    pass
        assert error.value.status == 410


async def _async_config(sim: Simulator) -> aclient.Configuration:
    configuration = aclient.Configuration()
    await aconfig.load_kube_config(
        config_file=str(sim.kubeconfig_path), client_configuration=configuration
    )
    return configuration
