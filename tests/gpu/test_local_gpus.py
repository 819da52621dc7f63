"""Local mode on a machine with NVIDIA GPUs: the inventory from nvidia-smi, and a job whose
rank sees exactly the GPU it was handed and runs NCCL on it. Skipped where there is no GPU."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cloudpickle
import pytest

from hubflow.jobs.local import LocalBackend
from hubflow.jobs.store import JobRecord, new_job_id
from hubflow.launcher.payload import cell_payload
from hubflow.spawner.gpus import GpuAllocator, detect_gpus, product_matches

pytestmark = pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA GPU here")

CELL = """
import os, torch, torch.distributed as dist
dist.init_process_group("nccl")
seen = (os.environ["CUDA_VISIBLE_DEVICES"], torch.cuda.device_count())
t = torch.ones(4, device="cuda") * (dist.get_rank() + 1)
dist.all_reduce(t)
total = t.sum().item()
"""


def test_inventory_comes_from_nvidia_smi() -> None:
    gpus = detect_gpus()
    assert gpus, "nvidia-smi listed no GPU"
    assert all(g.product.startswith("NVIDIA") and " " not in g.product for g in gpus)
    allocator = GpuAllocator(gpus)
    held = allocator.allocate("alice/", 1, gpus[0].product.split("-")[1], shared=False)
    assert held == [gpus[0].id]
    assert product_matches(gpus[0].product, gpus[0].product.split("-")[1].lower())
    # What the spawn page shows: this machine's GPUs by product, the one held not free.
    product = gpus[0].product
    total = sum(g.product == product for g in gpus)
    assert allocator.availability()[product] == (total - 1, total)


def test_a_rank_sees_only_its_gpu_and_runs_nccl(tmp_path: Path) -> None:
    gpu = detect_gpus()[-1]
    backend = LocalBackend(tmp_path / "data")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    job = JobRecord(
        id=new_job_id(),
        user="alice",
        framework="pytorch",
        workers=1,
        gpus=[gpu.id],
        gpus_per_worker=1,
        workspace=str(workspace),
        environment={},
        state="Pending",
        created=time.time(),
    )
    backend.prepare(job.id, cell_payload(CELL, {}, pull=("seen", "total")).dumps())
    job.supervisor_pid, job.supervisor_start = backend.start(job)
    deadline = time.monotonic() + 180
    while not (outcome := backend.poll(job)).state.finished:
        assert time.monotonic() < deadline, backend.supervisor_log_tail(job.id)
        time.sleep(0.2)
    assert outcome.state.value == "Succeeded", outcome.error
    result = cloudpickle.loads(backend.channel(job.id).read_result())
    assert result["variables"]["seen"] == (gpu.id, 1)
    assert result["variables"]["total"] == 4.0
