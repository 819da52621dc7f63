"""%%distribute end to end in Kubernetes mode: a kernel in a user's server pod (a real hub in
Kubernetes mode against the simulated cluster) runs a cell as a Kubeflow job; the ranks run as
pods made by the training-operator stand-in, all_reduce over gloo, stream their logs into the
cell, and the pulled result comes back into the notebook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.kernel import KernelClient
from tests.kube.sim import Simulator

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
    kernel: KernelClient, k8s_cluster: Simulator
) -> None:
    # hubflow's images load the launcher in every kernel; the simulator's "image" is this machine.
    setup = kernel.execute("%load_ext hubflow.launcher\nbase = 20.0")
    assert setup.status == "ok", setup.traceback
    out = kernel.execute(CELL, timeout=300)
    assert out.status == "ok", out.traceback + out.stdout
    assert "[rank 0] total 41.0" in out.stdout and "[rank 1] total 41.0" in out.stdout
    assert out.result == "410.0"
    assert "Succeeded" in list(out.displays.values())[-1]
    assert kernel.execute("print(total)").stdout.strip() == "41.0"
    (trainjob,) = k8s_cluster.objects("trainjobs", "default")
    assert trainjob["metadata"]["labels"]["hubflow.io/user"] == "alice"
    assert trainjob["spec"]["trainer"]["numNodes"] == 2
    ranks = [
        p
        for p in k8s_cluster.objects("pods", "default")
        if "trainjob-name" in str(p["metadata"]["labels"])
    ]
    assert len(ranks) == 2
    assert all(
        p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "workspace-alice"
        for p in ranks
    )
