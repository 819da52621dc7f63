"""%%distribute end to end: a real hub spawns a real server; a real kernel (over the server's
kernel REST and websocket API, through the proxy) runs cells as torchrun jobs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.helpers.hubclient import HubClient
from tests.helpers.kernel import KernelClient


@pytest.fixture
def alice(login) -> HubClient:
    client = login("alice")
    client.spawn({"profile": "cpu-small"})
    return client


@pytest.fixture
def kernel(alice: HubClient) -> Iterator[KernelClient]:
    client = KernelClient(alice.server_url(), alice.new_token())
    yield client
    client.close()


ALL_REDUCE = """%%distribute --workers 2 --pull total,rank_seen
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
rank_seen = int(os.environ["RANK"])
t = torch.tensor([float(scale(arr).sum()) + rank_seen])
dist.all_reduce(t)
total = t.item()
print("total", total)
total * 10
"""


def test_cell_all_reduce_with_pushed_function_and_array_pulls_result_back(
    kernel: KernelClient,
) -> None:
    setup = kernel.execute(
        "import numpy as np\narr = np.arange(4)\nfactor = 3\ndef scale(x):\n    return x * factor\n"
    )
    assert setup.status == "ok", setup.traceback
    out = kernel.execute(ALL_REDUCE)
    assert out.status == "ok", out.traceback + out.stdout
    # (0+1+2+3)*3 = 18 on each rank, plus ranks 0 and 1
    assert "[rank 0] total 37.0" in out.stdout and "[rank 1] total 37.0" in out.stdout
    assert out.result == "370.0"
    assert any("Running" in text for text in out.display_history)
    assert "Succeeded" in list(out.displays.values())[-1]
    back = kernel.execute("print(total, rank_seen)")
    assert back.stdout.strip() == "37.0 0"


def test_failing_rank_raises_original_exception_with_rank_and_remote_traceback(
    kernel: KernelClient,
) -> None:
    out = kernel.execute(
        "%%distribute --workers 2\nimport os, time\n"
        "def load_shard(rank):\n    raise KeyError(f'shard {rank} missing')\n"
        "if os.environ['RANK'] == '1':\n    load_shard(1)\ntime.sleep(60)\n"
    )
    assert out.status == "error"
    assert out.error is not None and out.error["ename"] == "KeyError"
    assert "shard 1 missing" in out.error["evalue"]
    assert "RemoteTraceback" in out.traceback
    assert "[rank 1]" in out.traceback and "load_shard" in out.traceback
    assert "raised on rank 1 of job" in out.traceback


def test_interrupting_the_cell_cancels_the_job(kernel: KernelClient, alice: HubClient) -> None:
    interrupted = threading.Event()

    def interrupt_once_running(execution) -> None:
        if "[rank 0] working" in execution.stdout and not interrupted.is_set():
            interrupted.set()
            kernel.interrupt()

    out = kernel.execute(
        "%%distribute --workers 2\nimport time\nprint('working', flush=True)\ntime.sleep(120)\n",
        on_output=interrupt_once_running,
        timeout=120,
    )
    assert interrupted.is_set()
    assert out.error is not None and out.error["ename"] == "KeyboardInterrupt"
    assert "cancelled" in out.stdout
    jobs = kernel.execute(
        "from hubflow.launcher.client import JobsClient\nprint([j['state'] for j in JobsClient.from_env().list()])"
    )
    assert jobs.stdout.strip() == "['Cancelled']"
    # nothing of the job keeps running
    assert not [p for p in alice.hub.data_dir.glob("jobs/*/exit.json")]


def test_report_shows_progress_and_jobs_magic_lists(kernel: KernelClient) -> None:
    out = kernel.execute(
        "%%distribute --workers 1 --framework python --name progress-demo\n"
        "import time\nfrom hubflow.launcher import report\n"
        "for step in range(1, 9):\n    report(step=step, total=8, loss=1.0 / step)\n    time.sleep(0.4)\n"
    )
    assert out.status == "ok", out.traceback
    shown = "\n".join(out.display_history)
    assert "step 8/8" in shown and "loss=0.125" in shown and "steps/s" in shown and "ETA" in shown
    listed = kernel.execute("%jobs")
    assert "(progress-demo) Succeeded" in listed.stdout


def test_no_wait_job_is_reattached_from_a_new_kernel_and_pulls_its_result(
    kernel: KernelClient, alice: HubClient
) -> None:
    out = kernel.execute(
        "%%distribute --workers 1 --framework python --no-wait --pull answer\n"
        "import time\ntime.sleep(3)\nanswer = 42\n"
    )
    assert out.status == "ok", out.traceback
    job_id = out.stdout.split("submitted job ")[1].split(";")[0]
    kernel.close()  # the notebook's kernel goes away (a restart); the job does not
    fresh = KernelClient(alice.server_url(), alice.new_token())
    try:
        back = fresh.execute(f"%job attach {job_id}\nprint('answer is', answer)")
        assert back.status == "ok", back.traceback
        assert "answer is 42" in back.stdout
    finally:
        fresh.close()


def test_timeout_cancels_a_job_that_runs_too_long(kernel: KernelClient) -> None:
    out = kernel.execute(
        "%%distribute --workers 1 --framework python --timeout 3\nimport time\ntime.sleep(60)\n",
        timeout=60,
    )
    assert out.status == "error"
    assert out.error is not None and out.error["ename"] == "TimeoutError"
    assert "cancelled after 3.0s" in out.error["evalue"]
    states = kernel.execute(
        "from hubflow.launcher.client import JobsClient\n"
        "print([j['state'] for j in JobsClient.from_env().list()])"
    )
    assert states.stdout.strip() == "['Cancelled']"
