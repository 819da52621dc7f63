"""pytest fixtures of warm pools on the real test cluster (imported by tests/kube/conftest.py).

`kube_pools(kubeflow_api)`: the jobs service's pool manager as it runs in Kubernetes mode (the
Kubeflow backend and the pool backend on the hub's ServiceAccount of `kube_ns`, never the
admin), running here on the machine, which reaches the ranks' pods at their addresses on the
cluster's bridge; with a user's server record (its workspace claim in the namespace). Pools left
at the end are stopped, and their job resources are checked to be gone.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from hubflow.hub.settings import JobsSettings
from hubflow.jobs.kubeflow.backend import KubeflowBackend
from hubflow.jobs.kubeflow.pools import KubePoolBackend
from hubflow.jobs.pools import IDLE, STOPPED, Pool, PoolManager, parse_pool_request
from hubflow.jobs.store import JobRecord
from hubflow.launcher.payload import cell_payload
from hubflow.profiles.server_record import ServerRecord
from tests.kube.cluster.fixtures import Namespace

#: The image of the pools' ranks (the node agent runs it as this machine's Python with torch).
POOL_IMAGE = "pytorch/pytorch:2.5.1"
#: How long a pool gets to start (pods created, torch imported, the process group formed).
START_S = 180


@dataclass
class KubePools:
    """A pool manager in Kubernetes mode, and a server of user alice to start pools from."""

    manager: PoolManager
    server: ServerRecord
    ns: Namespace
    #: pool id -> the key the API handed out for it (what the notebook's kernel holds).
    keys: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, ns: Namespace, data_dir: Path, kubeflow_api: str = "auto") -> KubePools:
        """A pool manager on the hub's account of `ns`, and alice's server (its claim made)."""
        api = ns.cluster.client(ns.hub_kubeconfig)
        jobs = KubeflowBackend(data_dir, api, ns.name, kubeflow_api)
        manager = PoolManager(KubePoolBackend(data_dir, jobs), JobsSettings())
        server = ServerRecord(
            workspace="/home/jovyan",
            gpus=[],
            environment={},
            profile={"slug": "cpu", "image": POOL_IMAGE, "gpu_count": 0, "cpu_limit": 1},
            namespace=ns.name,
            pvc_name=_workspace_claim(ns),
        )
        return cls(manager, server, ns)

    async def close(self) -> None:
        """Stop the pools left; wait for their job resources to be gone."""
        for pool in list(self.manager.pools.values()):
            await self.manager.stop(pool, STOPPED, "test over")
            self.ns.cluster.wait_for(lambda pool=pool: not self.resources(pool), timeout=60)

    async def start(self, workers: int = 2, idle_timeout: int = 600) -> Pool:
        """A new pool of `workers` ranks, once every rank has said hello."""
        request = parse_pool_request({"workers": workers})
        spec = self.manager.backend.admit(request, self.server)
        job = JobRecord.for_request(
            "alice", ["students"], request, self.server, [], spec, state="Pending"
        )
        pool, key = await self.manager.create(job, idle_timeout)
        assert self.manager.key_matches(pool, key)
        self.keys[pool.id] = key
        await asyncio.wait_for(pool.ready.wait(), START_S)
        assert pool.state == IDLE, pool.reason
        return pool

    async def run(self, pool: Pool, code: str, *pull: str, timeout: float = 60) -> dict[str, Any]:
        """Run a cell on every rank; its outcome (the result unpickled) and each rank's output."""
        cell = await self.manager.run_cell(pool, cell_payload(code, {}, pull=list(pull)).dumps())
        await asyncio.wait_for(cell.finished.wait(), timeout)
        outcome = self.manager.outcome(pool, cell)
        if outcome["state"] == "Succeeded":
            outcome["result"] = cloudpickle.loads(base64.b64decode(outcome["result"]))
        backend = self.manager.backend
        outcome["output"] = {
            rank: [line for _, line in backend.read_log(pool.id, rank, offset, True).lines]
            for rank, offset in cell.log_offsets.items()
        }
        return outcome

    def resources(self, pool: Pool) -> list[dict[str, Any]]:
        """The pool's job resources that the API server still has."""
        kinds = ("pytorchjobs", "trainjobs")
        return [
            obj
            for kind in kinds
            for obj in self.ns.cluster.objects(kind, self.ns.name)
            if obj["metadata"]["name"] == f"hubflow-{pool.id}"
        ]


def _workspace_claim(ns: Namespace) -> str:
    claim = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "claim-alice"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                 "resources": {"requests": {"storage": "1Gi"}}},
    }  # fmt: skip
    ns.cluster.cp.kubectl("apply", "-n", ns.name, "-f", "-", input=json.dumps(claim))
    return "claim-alice"


@pytest.fixture
def kubeflow_api() -> str:
    """The kind pools are made as: "auto" (TrainJob on hubflow's runtime) or "v1" (PyTorchJob);
    parametrize it to change it."""
    return "auto"


@pytest.fixture
async def kube_pools(
    kube_ns: Namespace, tmp_path: Path, kubeflow_api: str
) -> AsyncIterator[KubePools]:
    pools = KubePools.create(kube_ns, tmp_path / "data", kubeflow_api)
    yield pools
    await pools.close()
