"""The chart's NetworkPolicies, evaluated by the Kubernetes rules (tests/helm/netpol.py) for
the pods hubflow really makes: nothing but the proxy (and the hub) reaches users' servers; the
servers reach the proxy, the hub and jobs APIs, DNS and the configured egress."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.chart import NAMESPACE, find, render, with_namespace
from tests.helm.netpol import Address, Pod, allowed
from tests.spawner.test_kube_manifest import kubeconfig, pod_for  # noqa: F401 (fixture)

HUB_PORT, JOBS_PORT, HTTP_PORT, PROXY_API_PORT, SERVER_PORT = 8081, 8090, 8000, 8001, 8888


def _policies(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in with_namespace(objects) if o["kind"] == "NetworkPolicy"]


def _chart_pod(objects: list[dict[str, Any]], component: str, ip: str) -> Pod:
    """The pod a chart Deployment makes: its template's labels and named ports."""
    template = find(objects, "Deployment", f"-{component}")["spec"]["template"]
    ports = {
        p["name"]: p["containerPort"]
        for c in template["spec"]["containers"]
        for p in c.get("ports", [])
    }
    return Pod(NAMESPACE, template["metadata"]["labels"], ip, ports)


@pytest.fixture
async def server_labels(kubeconfig: None) -> dict[str, str]:  # noqa: F811 (the fixture)
    """The labels of a user's server pod as hubflow's KubeSpawner builds it."""
    pod = await pod_for({"profile": "small-cpu"})
    return pod["metadata"]["labels"]


class Cluster:
    """The chart's pods and a few others, and the policies between them."""

    def __init__(self, objects: list[dict[str, Any]], users_ns: str, labels: dict[str, str]):
        self.policies = _policies(objects)
        self.hub = _chart_pod(objects, "hub", "10.1.0.2")
        self.proxy = _chart_pod(objects, "proxy", "10.1.0.3")
        self.server = Pod(users_ns, labels, "10.2.0.10", {"notebook-port": SERVER_PORT})
        self.other_server = Pod(
            users_ns, {**labels, "hub.jupyter.org/username": "bob"}, "10.2.0.11"
        )
        self.job_pod = Pod(users_ns, {"training.kubeflow.org/job-name": "j1"}, "10.2.0.12")
        self.stranger = Pod("default", {"app": "anything"}, "10.3.0.1")
        self.dns = Pod("kube-system", {"k8s-app": "kube-dns"}, "10.96.0.10")

    def can(self, source: Pod | Address, target: Pod | Address, port: int, proto: str = "TCP"):
        return allowed(self.policies, source, target, port, proto)


@pytest.fixture
def default_cluster(default_objects: list[dict[str, Any]], server_labels: dict[str, str]):
    return Cluster(default_objects, NAMESPACE, server_labels)


@pytest.fixture
def gpu_cluster(gpu_objects: list[dict[str, Any]], server_labels: dict[str, str]):
    return Cluster(gpu_objects, "hubflow-users", server_labels)


def test_only_the_proxy_and_the_hub_reach_a_users_server(default_cluster: Cluster) -> None:
    c = default_cluster
    assert c.can(c.proxy, c.server, SERVER_PORT)
    assert c.can(c.hub, c.server, SERVER_PORT)
    assert not c.can(c.other_server, c.server, SERVER_PORT)
    assert not c.can(c.job_pod, c.server, SERVER_PORT)
    assert not c.can(c.stranger, c.server, SERVER_PORT)
    assert not c.can(Address("203.0.113.9"), c.server, SERVER_PORT)


def test_a_server_reaches_the_proxy_the_hub_and_jobs_apis_and_dns(default_cluster: Cluster):
    c = default_cluster
    assert c.can(c.server, c.hub, HUB_PORT)
    assert c.can(c.server, c.hub, JOBS_PORT)
    assert c.can(c.server, c.proxy, HTTP_PORT)
    assert c.can(c.server, c.dns, 53, "UDP") and c.can(c.server, c.dns, 53, "TCP")
    assert not c.can(c.server, c.proxy, PROXY_API_PORT)
    assert not c.can(c.server, c.other_server, SERVER_PORT)
    assert not c.can(c.server, c.stranger, 80)


def test_a_server_reaches_the_internet_but_no_private_address(default_cluster: Cluster):
    c = default_cluster
    assert c.can(c.server, Address("151.101.0.223"), 443)  # pypi.org
    for private in ("10.0.0.5", "172.20.1.1", "192.168.1.1", "169.254.169.254"):
        assert not c.can(c.server, Address(private), 443), private


def test_the_hub_api_and_proxy_api_are_closed_to_others(default_cluster: Cluster) -> None:
    c = default_cluster
    assert c.can(c.proxy, c.hub, HUB_PORT) and c.can(c.proxy, c.hub, JOBS_PORT)
    assert c.can(c.hub, c.proxy, PROXY_API_PORT)
    assert c.can(Address("203.0.113.9"), c.proxy, HTTP_PORT)
    for outsider in (c.stranger, c.job_pod, Address("203.0.113.9")):
        assert not c.can(outsider, c.hub, HUB_PORT)
        assert not c.can(outsider, c.hub, JOBS_PORT)
        assert not c.can(outsider, c.proxy, PROXY_API_PORT)


def test_users_in_their_own_namespace_with_configured_egress_only(gpu_cluster: Cluster):
    """The GPU example: servers in hubflow-users, no internet, a mirror and an object store."""
    c = gpu_cluster
    users_policy = find(c.policies, "NetworkPolicy", "-users")
    assert users_policy["metadata"]["namespace"] == "hubflow-users"
    assert c.can(c.proxy, c.server, SERVER_PORT) and c.can(c.hub, c.server, SERVER_PORT)
    assert not c.can(Pod(NAMESPACE, {"app": "other"}), c.server, SERVER_PORT)
    assert c.can(c.server, c.hub, HUB_PORT) and c.can(c.server, c.hub, JOBS_PORT)
    assert not c.can(c.server, Address("151.101.0.223"), 443)
    mirror = Pod("mirrors", {"app": "devpi"}, "10.4.0.1")
    assert c.can(c.server, mirror, 3141) and not c.can(c.server, mirror, 22)
    assert c.can(c.server, Address("10.20.3.4"), 9000)
    assert not c.can(c.server, Address("10.21.3.4"), 9000)


def test_network_policies_can_be_left_out() -> None:
    off = {"enabled": False}
    objects = render(
        {
            "hub": {"networkPolicy": off},
            "proxy": {"networkPolicy": off},
            "users": {"networkPolicy": off},
            "jobs": {"networkPolicy": off},
        }
    )
    assert not [o for o in objects if o["kind"] == "NetworkPolicy"]
