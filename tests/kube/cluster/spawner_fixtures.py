"""pytest fixtures of the spawner tests on the real test cluster (imported by tests/kube/conftest.py).

`kubespawner_ns` (function): `kube_ns`, with KubeSpawner's global client configuration (what its
shared clients and reflectors use) pointing at the namespace's hub kubeconfig: the chart's
ServiceAccount, never the admin. KubeSpawner's reflectors are stopped after the test.
`hub_fault_proxy` (function): a FaultProxy in front of the API server with the hub's credentials;
`kubespawner_via_proxy` (function): KubeSpawner's client configuration pointing at that proxy
(yields the proxy, whose rules count and fail the hub's requests).
`agent_nodes` (function): add(name, cpu=..., memory=..., gpus=..., labels=...) makes a Node of
another shape, which the node agent adopts (node_agent.ADOPT_LABEL) as a kubelet registers one.
It is tainted for this test (AgentNode.toleration, .selector), so no other test's pod lands there,
and removed after the test with its pods.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.config import kube_config
from kubespawner import KubeSpawner
from kubespawner.clients import load_config

from tests.kube.cluster.faultproxy import FaultProxy
from tests.kube.cluster.fixtures import Namespace
from tests.kube.cluster.node_agent import ADOPT_LABEL

#: The taint of a test's own Nodes (its value: the Node's name).
NODE_TAINT = "hubflow.test/node"


@contextlib.asynccontextmanager
async def kubespawner_client(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """KubeSpawner's global client configuration from `kubeconfig` (as the hub loads it, with
    no in-cluster account); its reflectors stopped and the configuration forgotten after."""
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    load_config.cache_clear()
    load_config()
    try:
        yield
    finally:
        await KubeSpawner._stop_all_reflectors()
        load_config.cache_clear()


@pytest.fixture
async def kubespawner_ns(
    kube_ns: Namespace, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Namespace]:
    async with kubespawner_client(kube_ns.hub_kubeconfig, monkeypatch):
        yield kube_ns


@pytest.fixture
def hub_fault_proxy(kube_ns: Namespace, tmp_path: Path) -> Iterator[FaultProxy]:
    with FaultProxy(kube_ns.hub_kubeconfig, tmp_path) as proxy:
        yield proxy


@pytest.fixture
async def kubespawner_via_proxy(
    hub_fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FaultProxy]:
    async with kubespawner_client(hub_fault_proxy.kubeconfig_path, monkeypatch):
        yield hub_fault_proxy


@dataclass
class AgentNode:
    """A Node of a test's own, run by the node agent."""

    name: str

    @property
    def selector(self) -> dict[str, str]:
        """A pod's nodeSelector that picks this Node."""
        return {ADOPT_LABEL: self.name}

    @property
    def toleration(self) -> dict[str, str]:
        """The toleration a pod needs to land on this Node."""
        return {"key": NODE_TAINT, "operator": "Equal", "value": self.name, "effect": "NoSchedule"}


@pytest.fixture
def agent_nodes(kube_ns: Namespace) -> Iterator[Callable[..., AgentNode]]:
    cluster = kube_ns.cluster
    made: list[AgentNode] = []

    def add(
        name: str, cpu: str = "8", memory: str = "32Gi", gpus: int = 0,
        labels: dict[str, str] | None = None,
    ) -> AgentNode:  # fmt: skip
        node = AgentNode(f"{kube_ns.name}-{name}")
        capacity: dict[str, Any] = {"cpu": cpu, "memory": memory, "pods": "110"}
        if gpus:
            capacity["nvidia.com/gpu"] = str(gpus)
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": {**node.selector, **(labels or {})}},
            "spec": {"taints": [{"key": NODE_TAINT, "value": node.name, "effect": "NoSchedule"}]},
            "status": {"capacity": capacity, "allocatable": capacity},
        }  # fmt: skip
        cluster.cp.kubectl("create", "-f", "-", input=json.dumps(body))
        made.append(node)
        cluster.wait_for(lambda: _schedulable(cluster.get("nodes", "", node.name)), timeout=60)
        return node

    yield add
    for node in made:
        cluster.cp.kubectl("delete", "pods", "--all-namespaces", "--wait=true", "--timeout=60s",
                           f"--field-selector=spec.nodeName={node.name}", check=False)  # fmt: skip
        cluster.cp.kubectl("delete", "node", node.name, "--wait=true", "--timeout=60s")


def _schedulable(node: dict[str, Any] | None) -> bool:
    """Ready, and without the taints of a node that is not (yet) ready."""
    if node is None:
        return False
    conditions = node["status"].get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    taints = node["spec"].get("taints") or []
    return ready and not any(t["key"].startswith("node.kubernetes.io/") for t in taints)
