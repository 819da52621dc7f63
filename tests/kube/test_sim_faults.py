"""Injected faults, each observed through a real client."""

from __future__ import annotations

import time

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig
from kubernetes_asyncio import watch as awatch

from tests.kube.sim import Simulator


def test_429_with_retry_after(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    # urllib3 (under the sync client) honours Retry-After on reads: two 429s cost two waits, then success.
    fault = k8s_cluster.inject("list", "pods", status=429, retry_after=1, times=2)
    start = time.monotonic()
    assert v1.list_namespaced_pod("default").items == []
    assert fault.hits == 2 and time.monotonic() - start >= 2
    # Writes are not retried: the client sees the 429 Status and its Retry-After header.
    k8s_cluster.inject("create", "configmaps", status=429, retry_after=7)
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert error.value.status == 429 and error.value.headers["Retry-After"] == "7"
    assert '"reason":"TooManyRequests"' in error.value.body.replace(" ", "")
    assert v1.list_namespaced_config_map("default").items == []


def test_500_and_409_on_create(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    k8s_cluster.inject("create", "configmaps", status=500)
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert error.value.status == 500 and "InternalError" in error.value.body
    k8s_cluster.inject("create", "configmaps", status=409)
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert error.value.status == 409 and "Conflict" in error.value.body
    assert k8s_cluster.objects("configmaps") == []
    v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})


def test_slow_answer(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    k8s_cluster.inject("get", "namespaces", delay=1.0)
    start = time.monotonic()
    v1.read_namespace("default")
    assert time.monotonic() - start >= 1.0
    slow = k8s_cluster.inject("get", "namespaces", delay=1.0, times=10)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as error:
        v1.read_namespace("default", _request_timeout=0.3)
    assert isinstance(error.value.reason, urllib3.exceptions.ReadTimeoutError)
    assert slow.hits == 4  # the first try and urllib3's three retries all timed out


def test_watch_cut_mid_stream(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    for i in range(3):
        v1.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
    k8s_cluster.inject("watch", "configmaps", cut_after=1)
    seen = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for event in watch.Watch().stream(
            v1.list_namespaced_config_map, "default", timeout_seconds=5
        ):
            seen.append(event["object"].metadata.name)
    assert seen == ["c0"]


def test_watch_gone_fault(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    k8s_cluster.inject("watch", "configmaps", gone=True)
    with pytest.raises(ApiException) as error:
        list(
            watch.Watch().stream(
                v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=2
            )
        )
    assert error.value.status == 410


def test_faults_over_http_control_api(k8s_cluster: Simulator) -> None:
    code, fault = k8s_cluster.request(
        "POST", "/_sim/faults", {"verb": "get", "resource": "nodes", "status": 503}
    )
    assert code == 201 and fault["status"] == 503
    with pytest.raises(ApiException) as error:
        client.CoreV1Api(k8s_cluster.client()).read_node("sim-cpu-1")
    assert error.value.status == 503
    code, listed = k8s_cluster.request("GET", "/_sim/faults")
    assert listed["pending"] == [] and listed["used"][0]["hits"] == 1
    code, compacted = k8s_cluster.request("POST", "/_sim/compact", {})
    assert code == 200 and int(compacted["compactedResourceVersion"]) > 0


async def test_asyncio_client_sees_429_and_cut_watch(k8s_cluster: Simulator) -> None:
    configuration = aclient.Configuration()
    await aconfig.load_kube_config(
        config_file=str(k8s_cluster.kubeconfig_path), client_configuration=configuration
    )
    async with aclient.ApiClient(configuration) as api:
        v1 = aclient.CoreV1Api(api)
        k8s_cluster.inject("list", "pods", status=429)
        with pytest.raises(aclient.ApiException) as error:
            await v1.list_namespaced_pod("default")
        assert error.value.status == 429
        await v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
        await v1.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
        k8s_cluster.inject("watch", "configmaps", cut_after=1)
        seen = []
        with pytest.raises(Exception) as cut:  # aiohttp's payload error: the stream ended mid-chunk
            async with awatch.Watch().stream(
                v1.list_namespaced_config_map, "default", timeout_seconds=5
            ) as stream:
                async for event in stream:
                    seen.append(event["object"].metadata.name)
        assert seen == ["a"] and "Payload" in type(cut.value).__name__
