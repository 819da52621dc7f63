"""%%distribute end to end in Kubernetes mode: a kernel in a user's server pod (a real hub in
Kubernetes mode on the real control plane, as the chart's ServiceAccount) runs a cell as a
Kubeflow job; the ranks run as pods made by the real Trainer and JobSet controllers, all_reduce
over gloo across their network namespaces, stream their logs into the cell, and the pulled
result comes back into the notebook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.kernel import KernelClient
from tests.kube.cluster.fixtures import Namespace

CELL = """%%distribute --workers 2 --pull total
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(os.environ["RANK"]) + base])
dist.all_reduce(t)
total = t.item()
print("total", total)
dist.destroy_process_group()
total * 10
"""


@pytest.fixture
def kernel(kube_hub: HubProcess) -> Iterator[KernelClient]:
    alice = HubClient(kube_hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})
    client = KernelClient(alice.server_url(), alice.new_token())
    yield client
    client.close()


def test_a_cell_runs_as_a_trainjob_whose_ranks_all_reduce(
    kernel: KernelClient, kube_ns: Namespace
) -> None:
    # hubflow's images load the launcher in every kernel; the node agent's "image" is this
    # checkout's environment.
    setup = kernel.execute("%load_ext hubflow.launcher\nbase = 20.0")
    assert setup.status == "ok", setup.traceback
    out = kernel.execute(CELL, timeout=300)
    assert out.status == "ok", out.traceback + out.stdout
    assert "[rank 0] total 41.0" in out.stdout and "[rank 1] total 41.0" in out.stdout
    assert out.result == "410.0"
    assert "Succeeded" in list(out.displays.values())[-1]
    assert kernel.execute("print(total)").stdout.strip() == "41.0"
    cluster, ns = kube_ns.cluster, kube_ns.name
    (trainjob,) = cluster.objects("trainjobs", ns)
    assert trainjob["metadata"]["labels"]["hubflow.io/user"] == "alice"
    assert trainjob["spec"]["trainer"]["numNodes"] == 2
    # JobSet's label on the ranks' pods names the TrainJob (Trainer names its JobSet after it).
    name = trainjob["metadata"]["name"]
    ranks = [
        p
        for p in cluster.objects("pods", ns)
        if p["metadata"]["labels"].get("jobset.sigs.k8s.io/jobset-name") == name
    ]
    assert len(ranks) == 2
    for pod in ranks:
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == ["workspace-alice"]
