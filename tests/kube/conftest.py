"""Fixtures for the Kubernetes tests: a simulated cluster per test (see docs/simulator.md)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.config import kube_config
from kubespawner import KubeSpawner
from kubespawner.clients import load_config

from hubflow.hub.settings import DEFAULT_PROFILES
from tests.helpers.hubclient import HubProcess
from tests.kube.cluster.fixtures import kube_ns, real_cluster  # noqa: F401 (the real cluster)
from tests.kube.sim import NodeSpec, Simulator
from tests.kube.sim.nodes import default_nodes

#: The hub configuration of the Kubernetes tests (hubflow's own, plus the simulator's needs).
KUBE_HUB_CONFIG = Path(__file__).parent / "hub_config.py"


@pytest.fixture
def k8s_nodes() -> list[NodeSpec]:
    """The nodes of `k8s_cluster`; override this fixture (or parametrize it) for other shapes."""
    return default_nodes(3)


@pytest.fixture
def k8s_options() -> dict[str, Any]:
    """Extra Simulator(...) arguments for `k8s_cluster` (override to change them)."""
    return {"backoff": 0.2, "bookmark_every": 0.5}


@pytest.fixture
def k8s_cluster(
    tmp_path: Path, k8s_nodes: list[NodeSpec], k8s_options: dict[str, Any]
) -> Iterator[Simulator]:
    """A running simulated cluster: .kubeconfig_path, .api_url, .client(), .inject(), .objects()."""
    sim = Simulator(tmp_path / "k8s", nodes=k8s_nodes, **k8s_options).start()
    pids = []
    try:
        yield sim
        pids = sim.pod_processes()
    finally:
        sim.stop()
    leaked = [pid for pid in pids if _alive(pid)]
    assert not leaked, f"pod processes left running: {leaked}"


@pytest.fixture
async def kubespawner_config(
    k8s_cluster: Simulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """Point KubeSpawner's global client configuration at the simulator; stop its reflectors after."""
    monkeypatch.setattr(
        kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(k8s_cluster.kubeconfig_path)
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    load_config.cache_clear()
    load_config()
    yield
    await KubeSpawner._stop_all_reflectors()
    load_config.cache_clear()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def kube_hub_env(cluster: Simulator) -> dict[str, str]:
    """The environment of a hub in Kubernetes mode that uses `cluster` through its kubeconfig."""
    return {
        "HUBFLOW_MODE": "kubernetes",
        "HUBFLOW_NAMESPACE": "default",
        "KUBECONFIG": str(cluster.kubeconfig_path),
    }


@pytest.fixture
def kube_hub_factory(
    k8s_cluster: Simulator, hub_factory: Callable[..., HubProcess]
) -> Callable[..., HubProcess]:
    """Start hubs in Kubernetes mode against `k8s_cluster` (arguments as for `hub_factory`)."""

    def make(**kwargs: Any) -> HubProcess:
        kwargs["extra_env"] = {**kube_hub_env(k8s_cluster), **kwargs.get("extra_env", {})}
        kwargs.setdefault("profiles", [str(DEFAULT_PROFILES)])
        return hub_factory(config_file=KUBE_HUB_CONFIG, **kwargs)

    return make


@pytest.fixture
def kube_hub(kube_hub_factory: Callable[..., HubProcess]) -> HubProcess:
    """A running hub in Kubernetes mode: users' servers are pods in the simulated cluster's
    `default` namespace, reached through the hub's real proxy; profiles/default.yaml."""
    return kube_hub_factory()
