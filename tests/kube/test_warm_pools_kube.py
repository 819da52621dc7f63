"""Warm pools in Kubernetes mode on the real test cluster: the pool is a Kubeflow job (TrainJob
on hubflow's runtime, or PyTorchJob) whose two ranks run the warm loop in their pods; the jobs
service (here, on the machine) relays cells to them over TCP with frames sealed by the pool's
key. Cells keep each rank's state and the process group; an interrupt stops a cell and keeps the
pool; a killed rank's pod breaks the pool naming the rank; an idle pool is released. End to
end, a kernel in a user's pod runs `%%distribute --warm` cells through the hub's jobs service
exactly as in local mode."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest

from hubflow.jobs.kubeflow.manifests import JOB_LABEL, WARM_POOL_LABEL
from hubflow.jobs.pools import BROKEN, STOPPED, parse_pool_request
from hubflow.jobs.quota import Refusal
from hubflow.jobs.store import JobRecord
from hubflow.launcher.payload import cell_payload
from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.kernel import Execution, KernelClient
from tests.kube.cluster.fixtures import Namespace
from tests.kube.cluster.pool_fixtures import KubePools
from tests.kube.test_jobs_notebook import kernel  # noqa: F401 (a kernel in alice's pod)
from tests.kube.test_kube_hub import gpus_held, wait_for_free_gpus

#: Cell 1: each rank keeps a value of its own, made with the pool's process group.
SET_STATE = (
    "import os, torch, torch.distributed as dist\n"
    "rank = dist.get_rank()\n"
    "t = torch.tensor([rank + 1.0])\n"
    "dist.all_reduce(t)\n"
    "kept = rank * 10 + t.item()\n"
    "print(f'rank {rank} of {dist.get_world_size()} in pod {os.uname().nodename} kept {kept:g}')\n"
)
#: Cell 2: what each rank kept, gathered on rank 0.
READ_STATE = "every = [None] * dist.get_world_size()\ndist.all_gather_object(every, kept)\n"


def _pods(pools: KubePools, pool_id: str) -> list[dict]:
    return [
        p
        for p in pools.ns.cluster.objects("pods", pools.ns.name)
        if p["metadata"]["labels"].get(JOB_LABEL) == pool_id
    ]


@pytest.mark.parametrize("kubeflow_api", ["auto", "v1"], ids=["trainjob", "pytorchjob"])
async def test_two_ranks_keep_their_state_across_cells_and_survive_an_interrupt(
    kube_pools: KubePools, kubeflow_api: str
) -> None:
    pool = await kube_pools.start(workers=2)
    kind = kube_pools.resources(pool)[0]["kind"]
    assert kind == ("PyTorchJob" if kubeflow_api == "v1" else "TrainJob")
    pods = _pods(kube_pools, pool.id)
    assert len(pods) == 2
    for pod in pods:  # no cluster credential in a rank's pod
        # the label that opens the relay port to the hub's pod (the chart's pool-relay policy)
        assert pod["metadata"]["labels"][WARM_POOL_LABEL] == "true"
        assert not any("serviceaccount" in str(v) for v in pod["spec"].get("volumes", []))
        if kind == "PyTorchJob":
            assert pod["spec"]["automountServiceAccountToken"] is False

    first = await kube_pools.run(pool, SET_STATE)
    assert first["state"] == "Succeeded", first
    assert [line.split(" in pod ")[0] for line in first["output"][1]] == ["rank 1 of 2"]
    assert first["output"][0][0].endswith("kept 3")  # 0 * 10 + (1 + 2)
    second = await kube_pools.run(pool, READ_STATE, "every")
    assert second["result"]["variables"]["every"] == [3.0, 13.0]

    # An interrupt: a KeyboardInterrupt in the cell on every rank; the pool and its state stay.
    cell = await kube_pools.manager.run_cell(
        pool, cell_payload("import time\nfor _ in range(600): time.sleep(0.1)\n", {}).dumps()
    )
    await asyncio.sleep(1.0)
    assert kube_pools.manager.interrupt(pool)
    await asyncio.wait_for(cell.finished.wait(), 30)
    outcome = kube_pools.manager.outcome(pool, cell)
    assert outcome["interrupted"] and outcome["error"]["type"] == "builtins.KeyboardInterrupt"
    third = await kube_pools.run(pool, "kept += 1\n" + READ_STATE, "every")
    assert third["result"]["variables"]["every"] == [4.0, 14.0]
    assert pool.cells == 4 and len(_pods(kube_pools, pool.id)) == 2  # the same two pods

    # Left idle past its timeout, the pool is released and its job deleted.
    pool.idle_timeout = 2
    await asyncio.wait_for(pool.ended.wait(), 30)
    assert pool.state == STOPPED and pool.reason == "released after 2s idle"
    kube_pools.ns.cluster.wait_for(lambda: not kube_pools.resources(pool), timeout=60)


@pytest.mark.parametrize("kubeflow_api", ["v1"], ids=["pytorchjob"])
async def test_a_killed_rank_pod_breaks_the_pool_naming_the_rank(kube_pools: KubePools) -> None:
    pool = await kube_pools.start(workers=2)
    assert (await kube_pools.run(pool, SET_STATE))["state"] == "Succeeded"
    assert kube_pools.manager.holdings() and pool.live
    victim = next(p for p in _pods(kube_pools, pool.id) if "-worker-" in p["metadata"]["name"])
    name = victim["metadata"]["name"]
    started = time.monotonic()
    kube_pools.ns.cluster.cp.kubectl(
        "delete", "pod", "-n", kube_pools.ns.name, name, "--grace-period=0", "--force",
        "--wait=false",
    )  # fmt: skip
    await asyncio.wait_for(pool.ended.wait(), 60)
    assert time.monotonic() - started < 30
    assert pool.state == BROKEN and pool.broken_rank == 1
    # Whichever the service sees first: the pod's end through the API, or its connection drop.
    assert pool.reason.startswith(f"rank 1 (pod {name}") and pool.reason.endswith(
        "ended while idle"
    ), pool.reason
    with pytest.raises(Refusal, match="is broken: rank 1 .* --warm --restart"):
        await kube_pools.manager.run_cell(pool, cell_payload("1\n", {}).dumps())
    # its pods are released: the job resource is deleted, nothing counts against the quotas
    kube_pools.ns.cluster.wait_for(lambda: not kube_pools.resources(pool), timeout=60)
    assert kube_pools.manager.holdings() == []


async def test_a_starting_pool_says_why_its_ranks_do_not_run(kube_pools: KubePools) -> None:
    kube_pools.server.profile["image"] = "hubflow/doesnotexist:1"  # no registry has it
    request = parse_pool_request({"workers": 2})
    spec = kube_pools.manager.backend.admit(request, kube_pools.server)
    job = JobRecord.for_request("alice", [], request, kube_pools.server, [], spec, state="Pending")
    pool, _ = await kube_pools.manager.create(job, 600)
    deadline = time.monotonic() + 90
    while "ImagePull" not in pool.to_model()["reason"] and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    model = pool.to_model()
    assert model["state"] == "Starting" and "rank 0: " in model["reason"], model
    assert "ImagePull" in model["reason"]
    await kube_pools.manager.stop(pool, STOPPED, "stopped by alice")
    assert pool.to_model()["reason"] == "stopped by alice"
    kube_pools.ns.cluster.wait_for(lambda: not kube_pools.resources(pool), timeout=60)


WARM = "%%distribute --warm --workers 2"


def _ok(kernel: KernelClient, code: str, timeout: float = 120) -> Execution:  # noqa: F811
    out = kernel.execute(code, timeout=timeout)
    assert out.status == "ok", out.traceback + out.stdout + out.stderr
    return out


def test_warm_cells_from_a_kernel_in_a_users_pod(
    kernel: KernelClient,  # noqa: F811 (the fixture)
    kube_ns: Namespace,
) -> None:
    _ok(kernel, "%load_ext hubflow.launcher")
    first = _ok(kernel, f"{WARM}\nimport torch.distributed as dist\nkept = dist.get_rank() + 100\n"
                "print('kept', kept)\n", timeout=300)  # fmt: skip
    assert "[rank 0] kept 100" in first.stdout and "[rank 1] kept 101" in first.stdout
    second = _ok(kernel, f"{WARM} --pull every\nevery = [None] * dist.get_world_size()\n"
                 "dist.all_gather_object(every, kept)\n")  # fmt: skip
    assert "[rank 1]" not in second.stdout
    assert _ok(kernel, "print(every)").stdout.strip() == "[100, 101]"

    interrupted = threading.Event()

    def interrupt_once_running(execution: Execution) -> None:
        if "[rank 1] working" in execution.stdout and not interrupted.is_set():
            interrupted.set()
            kernel.interrupt()

    out = kernel.execute(
        f"{WARM}\nimport time\ntry:\n    print('working', flush=True)\n    time.sleep(120)\n"
        "except KeyboardInterrupt:\n    kept += 1\n    raise\n",
        on_output=interrupt_once_running,
        timeout=120,
    )
    assert interrupted.is_set()
    assert out.error is not None and out.error["ename"] == "KeyboardInterrupt"
    assert "interrupted on every rank; the pool keeps its state" in out.stdout
    after = _ok(kernel, f"{WARM}\nprint('kept', kept)\n")
    assert "[rank 0] kept 101" in after.stdout and "[rank 1] kept 102" in after.stdout

    listed = _ok(kernel, "%jobs").stdout
    found = re.search(r"pool ([0-9a-f]{12}) Idle · 2 workers · 0 GPUs", listed)
    assert found, listed
    (job,) = [j for j in kube_ns.cluster.objects("trainjobs", kube_ns.name)
              if j["metadata"]["name"] == f"hubflow-{found[1]}"]  # fmt: skip
    assert job["metadata"]["labels"]["hubflow.io/user"] == "alice"
    _ok(kernel, f"%pool stop {found[1]}")
    kube_ns.cluster.wait_for(
        lambda: not kube_ns.cluster.get("trainjobs", kube_ns.name, f"hubflow-{found[1]}"),
        timeout=60,
    )


def test_a_pools_gpus_count_against_the_quota_and_are_released_when_it_breaks(
    kube_hub: HubProcess, kube_ns: Namespace
) -> None:
    """alice (gpu-users: 4 GPUs) on a 1-GPU server: a pool of one 1-GPU rank is a pod on the GPU
    node; a second pool of 3 more GPUs is refused (she would hold 5); killing the first pool's
    rank breaks it and releases its GPU."""
    cluster = kube_ns.cluster
    wait_for_free_gpus(cluster)
    alice = HubClient(kube_hub, "alice").login()
    alice.spawn({"profile": "gpu-1"})
    gpu_kernel = KernelClient(alice.server_url(), alice.new_token())
    try:
        _ok(gpu_kernel, "%load_ext hubflow.launcher")
        one = "%%distribute --warm --workers 1 --gpus-per-worker 1"
        _ok(gpu_kernel, f"{one}\nkept = 7\n", timeout=300)
        assert gpus_held(cluster) == 2  # the server's and the rank's
        (rank,) = [p for p in cluster.objects("pods", kube_ns.name) if JOB_LABEL in
                   p["metadata"]["labels"] and not p["metadata"].get("deletionTimestamp")]  # fmt: skip
        assert rank["spec"]["nodeName"] == "gpu-a100-1"
        assert rank["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"

        refused = gpu_kernel.execute("%%distribute --warm --workers 3 --gpus-per-worker 1\n1\n")
        assert refused.error is not None and refused.error["ename"] == "JobsAPIError"
        assert "you already hold 2 GPUs and ask for 3 more" in refused.error["evalue"]

        name = rank["metadata"]["name"]
        cluster.cp.kubectl("delete", "pod", "-n", kube_ns.name, name, "--grace-period=0",
                           "--force", "--wait=false")  # fmt: skip
        cluster.wait_for(lambda: gpus_held(cluster) == 1, timeout=60)
        broken = gpu_kernel.execute(f"{one}\nkept\n", timeout=60)
        assert broken.error is not None and broken.error["ename"] == "PoolBroken"
        assert f"rank 0 (pod {name} " in broken.error["evalue"]
        assert "--warm --restart" in broken.error["evalue"]
    finally:
        gpu_kernel.close()
