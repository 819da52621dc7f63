"""%%distribute --warm end to end: a real hub spawns a real server; a real kernel runs cells on a
pool of torchrun ranks that the jobs service started once and relays cells to."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.kernel import KernelClient
from tests.helpers.services import service_pids

WARM = "%%distribute --warm --workers 2"


def _kernel(client: HubClient) -> KernelClient:
    client.spawn({"profile": "cpu-small"})
    return KernelClient(client.server_url(), client.new_token())


@pytest.fixture
def kernel(login: Callable[[str], HubClient]) -> Iterator[KernelClient]:
    client = _kernel(login("alice"))
    yield client
    client.close()


def _ok(kernel: KernelClient, code: str, timeout: float = 180) -> tuple[str, str | None]:
    out = kernel.execute(code, timeout=timeout)
    assert out.status == "ok", out.traceback + out.stdout + out.stderr
    return out.stdout, out.result


def _pids(kernel: KernelClient) -> list[int]:
    """The process of each rank, gathered over the pool's process group."""
    _ok(
        kernel,
        f"{WARM} --pull pids\nimport os, torch.distributed as dist\n"
        "pids = [None] * dist.get_world_size()\n"
        "dist.all_gather_object(pids, os.getpid())\n",
    )
    stdout, _ = _ok(kernel, "print(pids)")
    return [int(p) for p in re.findall(r"\d+", stdout)]


def test_warm_cells_keep_each_ranks_state_and_the_process_group(kernel: KernelClient) -> None:
    # the README cell, unchanged: init_process_group is a no-op in a warm pool
    out = kernel.execute(
        f"{WARM} --pull total\nimport torch, torch.distributed as dist\n"
        'dist.init_process_group("gloo")\n'
        "t = torch.tensor([float(dist.get_rank() + 1)])\ndist.all_reduce(t)\ntotal = t.item()\n"
        "model = torch.nn.Linear(4, 1)\nsteps = 0\nprint('loaded', dist.get_rank())\n",
        timeout=240,
    )
    assert out.status == "ok", out.traceback + out.stdout
    assert "[rank 0] loaded 0" in out.stdout and "[rank 1] loaded 1" in out.stdout
    stdout, _ = _ok(kernel, "print(total)")
    assert stdout.strip() == "3.0"
    # the ranks run as the user's server does (its own account when the hub is root)
    stdout, _ = _ok(kernel, f"{WARM}\nimport os\nprint('uid', os.getuid())\n")
    server_uid, _ = _ok(kernel, "import os\nprint(os.getuid())")
    assert f"[rank 1] uid {server_uid.strip()}" in stdout
    pids = _pids(kernel)
    assert len(set(pids)) == 2
    _ok(kernel, "lr = 0.5")
    for step in (1, 2, 3):  # the model and the step count stay on the ranks; lr is pushed
        out = kernel.execute(
            f"{WARM}\nfrom hubflow.launcher import report\n"
            "steps += 1\nreport(step=steps, total=3, lr=lr)\n"
            "w = model.weight.detach().clone()\ndist.broadcast(w, 0)\n"
            "print('step', steps, torch.equal(w, model.weight))\nsteps\n",
        )
        assert out.status == "ok", out.traceback
        assert f"[rank 1] step {step} " in out.stdout and out.result == str(step)
        assert any(f"step {step}/3 · lr=0.5" in text for text in out.display_history)
    assert _pids(kernel) == pids  # the same processes ran every cell
    listed, _ = _ok(kernel, "%jobs")
    pool_line = next(line for line in listed.splitlines() if line.startswith("pool "))
    assert "Idle · 2 workers · 0 GPUs · age " in pool_line and " idle " in pool_line
    assert "7 cells" in pool_line

    failed = kernel.execute(
        f"{WARM}\nimport torch.distributed as dist\n"
        "def load_shard(rank):\n    raise KeyError(f'shard {rank} missing')\n"
        "if dist.get_rank() == 1:\n    load_shard(1)\n"
    )
    assert failed.error is not None and failed.error["ename"] == "KeyError"
    assert "RemoteTraceback" in failed.traceback and "[rank 1]" in failed.traceback
    assert "load_shard" in failed.traceback and "raised on rank 1" in failed.traceback
    stdout, _ = _ok(kernel, f"{WARM}\nprint('still', steps)\n")
    assert "[rank 0] still 3" in stdout  # a failed cell leaves the pool and its state

    pool_id = pool_line.split()[1]
    stopped, _ = _ok(kernel, f"%pool stop {pool_id}")
    assert "Stopped" in stopped and "stopped by alice" in stopped
    assert all(_gone(pid) for pid in pids)
    again = kernel.execute(f"{WARM}\nprint(steps)\n")
    assert again.error is not None and "--warm --restart" in again.error["evalue"]


def _gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_interrupt_stops_the_cell_on_every_rank_and_keeps_the_pool(kernel: KernelClient) -> None:
    _ok(kernel, f"{WARM}\ncounter = 41\n", timeout=240)
    pids = _pids(kernel)
    interrupted = threading.Event()

    def interrupt_once_running(execution) -> None:
        if "[rank 1] working" in execution.stdout and not interrupted.is_set():
            interrupted.set()
            kernel.interrupt()

    out = kernel.execute(
        f"{WARM}\nimport time\ntry:\n    print('working', flush=True)\n    time.sleep(120)\n"
        "except KeyboardInterrupt:\n    counter += 1\n    raise\n",
        on_output=interrupt_once_running,
        timeout=120,
    )
    assert interrupted.is_set()
    assert out.error is not None and out.error["ename"] == "KeyboardInterrupt"
    assert "interrupted on every rank; the pool keeps its state" in out.stdout
    stdout, _ = _ok(kernel, f"{WARM}\nprint('counter', counter)\n")
    assert "[rank 0] counter 42" in stdout and "[rank 1] counter 42" in stdout
    assert _pids(kernel) == pids


@pytest.fixture
def short_idle_hub(hub_factory: Callable[..., HubProcess]) -> HubProcess:
    return hub_factory(extra_env={"HUBFLOW_POOL_IDLE_TIMEOUT": "6"})


def test_killed_rank_breaks_the_pool_and_a_new_one_starts_only_when_asked(
    short_idle_hub: HubProcess,
) -> None:
    kernel = _kernel(HubClient(short_idle_hub, "bob").login())
    try:
        _ok(kernel, f"{WARM}\nx = 1\n", timeout=240)
        pids = _pids(kernel)
        os.kill(pids[1], signal.SIGKILL)
        assert all(_gone(pid) for pid in pids)  # the other rank is stopped too
        deadline = time.monotonic() + 30
        listed = ""
        while "Broken" not in listed and time.monotonic() < deadline:
            listed, _ = _ok(kernel, "%jobs")
        assert "Broken" in listed and f"rank 1 (pid {pids[1]}) ended while idle" in listed
        refused = kernel.execute(f"{WARM}\nprint(x)\n")
        assert refused.error is not None and refused.error["ename"] == "PoolBroken"
        assert "rank 1" in refused.error["evalue"] and "--warm --restart" in refused.error["evalue"]
        stdout, _ = _ok(kernel, f"{WARM} --restart\nprint('defined', 'x' in globals())\n", 240)
        assert "[rank 0] defined False" in stdout  # a new pool: nothing of the old one

        # left idle past its timeout (6 s), the pool is released, with a warning first
        warned = kernel.execute("import time\ntime.sleep(9)\n", timeout=60)
        assert "has been idle" in warned.stdout and "Run a cell on it" in warned.stdout
        listed, _ = _ok(kernel, "%jobs")
        assert "Stopped" in listed and "released after 6s idle" in listed
    finally:
        kernel.close()


def test_a_restart_of_the_jobs_service_ends_the_pool_and_the_next_cell_says_so(
    hub: HubProcess, kernel: KernelClient
) -> None:
    _ok(kernel, f"{WARM}\nx = 1\n", timeout=240)
    pids = _pids(kernel)
    (service,) = service_pids(hub, "hubflow-jobs")
    os.kill(service, signal.SIGKILL)
    # the ranks leave with the service: nothing runs (or holds GPUs) that no service knows of
    assert all(_gone(pid) for pid in pids), pids
    deadline = time.monotonic() + 30
    while service_pids(hub, "hubflow-jobs") in ([], [service]):
        assert time.monotonic() < deadline, "the hub did not restart its jobs service"
        time.sleep(0.5)
    refused = kernel.execute(f"{WARM}\nprint(x)\n", timeout=60)
    assert refused.error is not None and refused.error["ename"] == "PoolBroken", refused.stdout
    assert "the jobs service restarted" in refused.error["evalue"]
    assert "--warm --restart" in refused.error["evalue"]
    stdout, _ = _ok(kernel, f"{WARM} --restart\nprint('defined', 'x' in globals())\n", 240)
    assert "[rank 0] defined False" in stdout
