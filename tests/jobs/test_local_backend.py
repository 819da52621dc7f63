"""The local backend with real processes: the supervisor runs torchrun or plain processes in
their own session; results, errors, logs and cancellation go through the job's directory."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import cloudpickle
import pytest

from hubflow.jobs.local import LocalBackend, Outcome, process_start_time
from hubflow.jobs.store import JobRecord, new_job_id
from hubflow.launcher.contract import JobState
from hubflow.launcher.payload import cell_payload


def start_job(
    tmp_path: Path,
    code: str,
    *,
    framework: str = "pytorch",
    workers: int = 2,
    ns: dict | None = None,
    pull: tuple[str, ...] = (),
    gpus: list[str] | None = None,
    gpus_per_worker: int = 0,
) -> tuple[LocalBackend, JobRecord]:
    backend = LocalBackend(tmp_path / "data")
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    job = JobRecord(
        id=new_job_id(),
        user="alice",
        framework=framework,
        workers=workers,
        gpus=gpus or [],
        gpus_per_worker=gpus_per_worker,
        workspace=str(workspace),
        environment={"PROFILE_VAR": "from-profile", "JUPYTERHUB_API_TOKEN": "secret"},
        state="Pending",
        created=time.time(),
    )
    backend.prepare(job.id, cell_payload(code, ns or {}, pull=pull).dumps())
    job.supervisor_pid, job.supervisor_start = backend.start(job)
    return backend, job


def wait_finished(backend: LocalBackend, job: JobRecord, timeout: float = 90) -> Outcome:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = backend.poll(job)
        if outcome.state.finished:
            return outcome
        time.sleep(0.1)
    raise TimeoutError(f"job not finished: {backend.supervisor_log_tail(job.id)}")


def test_torchrun_gloo_all_reduce_pulls_rank0_result_and_logs_per_rank(tmp_path: Path) -> None:
    code = (
        "import os, torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo')\n"
        "t = torch.tensor([float(os.environ['RANK']) + base])\n"
        "dist.all_reduce(t)\n"
        "total = t.item()\n"
        "print('rank', os.environ['RANK'], 'cwd', os.getcwd(), os.environ['PROFILE_VAR'])\n"
        "print('token', os.environ.get('JUPYTERHUB_API_TOKEN'))\n"
        "total * 2\n"
    )
    backend, job = start_job(tmp_path, code, ns={"base": 10.0}, pull=("total",))
    outcome = wait_finished(backend, job)
    assert outcome.state is JobState.SUCCEEDED, outcome
    result = cloudpickle.loads(backend.channel(job.id).read_result())
    assert result == {"value": 42.0, "variables": {"total": 21.0}}
    for rank in (0, 1):
        lines = [text for _, text in backend.read_log(job.id, rank, 0, final=True).lines]
        assert f"rank {rank} cwd {tmp_path / 'workspace'} from-profile" in lines
        assert "token None" in lines


def test_a_failing_rank_is_named_with_its_traceback(tmp_path: Path) -> None:
    code = (
        "import os, time\n"
        "if os.environ['RANK'] == '1':\n"
        "    raise ValueError('bad shard')\n"
        "time.sleep(30)\n"
    )
    backend, job = start_job(tmp_path, code)
    outcome = wait_finished(backend, job)
    assert outcome.state is JobState.FAILED
    assert outcome.failing_rank == 1
    assert outcome.error is not None
    assert outcome.error["type"] == "builtins.ValueError"
    assert "raise ValueError('bad shard')" in outcome.error["traceback"]
    assert cloudpickle.loads(__import__("base64").b64decode(outcome.error["exception"])).args == (
        "bad shard",
    )


def test_python_framework_sets_torchrun_variables_and_splits_gpus(tmp_path: Path) -> None:
    code = (
        "import os\n"
        "keys = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'CUDA_VISIBLE_DEVICES']\n"
        "print({k: os.environ[k] for k in keys})\n"
    )
    backend, job = start_job(
        tmp_path, code, framework="python", gpus=["0", "1", "2", "3"], gpus_per_worker=2
    )
    assert wait_finished(backend, job).state is JobState.SUCCEEDED
    seen = [eval(backend.read_log(job.id, r, 0, final=True).lines[0][1]) for r in (0, 1)]
    assert [s["RANK"] for s in seen] == ["0", "1"]
    assert [s["CUDA_VISIBLE_DEVICES"] for s in seen] == ["0,1", "2,3"]
    assert {s["WORLD_SIZE"] for s in seen} == {"2"} and {s["MASTER_ADDR"] for s in seen} == {
        "127.0.0.1"
    }
    assert seen[0]["MASTER_PORT"] == seen[1]["MASTER_PORT"]


def test_tensorflow_framework_gets_a_tf_config_cluster(tmp_path: Path) -> None:
    code = "import os\nprint(os.environ['TF_CONFIG'])\n"
    backend, job = start_job(tmp_path, code, framework="tensorflow", workers=3)
    assert wait_finished(backend, job).state is JobState.SUCCEEDED
    configs = [json.loads(backend.read_log(job.id, r, 0, final=True).lines[0][1]) for r in range(3)]
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(w.startswith("127.0.0.1:") for w in workers)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)


def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    code = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)\n"
    backend, job = start_job(tmp_path, code)
    deadline = time.monotonic() + 60
    while len(backend.channel(job.id).started_ranks()) < 2 or not all(
        backend.read_log(job.id, r, 0, final=False).lines for r in (0, 1)
    ):
        assert time.monotonic() < deadline, backend.supervisor_log_tail(job.id)
        time.sleep(0.1)
    rank_pids = [int(backend.read_log(job.id, r, 0, final=False).lines[0][1]) for r in (0, 1)]
    assert set(rank_pids) < set(backend.job_processes(job))
    asyncio.run(backend.cancel(job))
    assert not backend.is_alive(job)
    for pid in rank_pids:
        assert process_start_time(pid) is None


def test_liveness_needs_the_same_pid_and_start_time(tmp_path: Path) -> None:
    backend, job = start_job(tmp_path, "x = 1\n", workers=1)
    assert backend.is_alive(job)
    job.supervisor_start = (job.supervisor_start or 0) + 1  # as if the pid had been reused
    assert not backend.is_alive(job)
    job.supervisor_start -= 1
    wait_finished(backend, job)
    deadline = time.monotonic() + 10
    while backend.is_alive(job):  # exit.json is written just before the supervisor exits
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("final", [False, True])
def test_logs_read_complete_lines_and_resume_from_offsets(tmp_path: Path, final: bool) -> None:
    backend = LocalBackend(tmp_path)
    path = backend.channel("abc").rank_log_path(0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"one\ntwo\npart")
    chunk = backend.read_log("abc", 0, 0, final=final)
    expected = [(4, "one"), (8, "two")] + ([(12, "part")] if final else [])
    assert chunk.lines == expected
    assert backend.read_log("abc", 0, 4, final=False).lines == [(8, "two")]
