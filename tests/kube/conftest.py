"""Fixtures for the Kubernetes tests: the real test cluster (`real_cluster`, `kube_ns`), a whole
hub on it (`kube_hub`, `kube_hub_factory`), and the simulated cluster of the tests not moved yet."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.config import kube_config
from kubespawner import KubeSpawner
from kubespawner.clients import load_config

from tests.kube.cluster.fixtures import kube_ns, real_cluster  # noqa: F401 (the real cluster)
from tests.kube.cluster.hub_fixtures import kube_hub, kube_hub_factory  # noqa: F401 (a whole hub)
from tests.kube.cluster.spawner_fixtures import agent_nodes, hub_fault_proxy, kubespawner_ns, kubespawner_via_proxy  # noqa: F401, E501
from tests.kube.cluster.jobs_fixtures import bare_cluster, bare_ns, jobs_ns, jobs_service, stand_in  # noqa: F401, E501
from tests.kube.cluster.pool_fixtures import kube_pools, kubeflow_api  # noqa: F401 (warm pools)
from tests.kube.sim import NodeSpec, Simulator
from tests.kube.sim.nodes import default_nodes


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
