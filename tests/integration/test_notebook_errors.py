"""What a notebook shows when a distributed cell fails or is interrupted: the rank and the user's
own frames first, hubflow's internals hidden unless `--traceback full` asks for them. A real hub,
server and kernel; the jobs run on torchrun."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_PROFILES
from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.kernel import KernelClient

FAILING_CELL = """import os, time
def load_shard(rank):
    raise KeyError(f"shard {rank} missing")
if os.environ["RANK"] == "1":
    load_shard(1)
time.sleep(60)
"""
#: What only hubflow's own frames name.
INTERNALS = ("launcher/magics.py", "launcher/api.py", "launcher/monitor.py", "launcher/worker.py")
HIDDEN_NOTE = "(hubflow's own frames are hidden; %%distribute --traceback full shows them)"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelClient]:
    hub = HubProcess(
        data_dir=Path(tmp_path_factory.mktemp("errors")), profiles=[str(TEST_PROFILES)]
    )
    try:
        alice = HubClient(hub.start(), "alice").login()
        alice.spawn({"profile": "cpu-small"})
        client = KernelClient(alice.server_url(), alice.new_token())
        yield client
        client.close()
    finally:
        hub.kill_everything()


def test_a_failing_rank_shows_the_rank_and_the_users_frames_only(kernel: KernelClient) -> None:
    out = kernel.execute("%%distribute --workers 2\n" + FAILING_CELL)
    assert out.error is not None and out.error["ename"] == "KeyError"
    lines = out.error["traceback"]
    assert lines[0].startswith("KeyError raised on rank 1 of job "), lines
    assert "load_shard" in out.traceback and "shard 1 missing" in out.traceback
    assert not [part for part in INTERNALS if part in out.traceback], out.traceback
    assert lines[-1] == HIDDEN_NOTE


def test_traceback_full_keeps_hubflows_frames(kernel: KernelClient) -> None:
    out = kernel.execute("%%distribute --workers 2 --traceback full\n" + FAILING_CELL)
    assert out.error is not None and out.error["ename"] == "KeyError"
    assert "load_shard" in out.traceback and "RemoteTraceback" in out.traceback
    assert "launcher/magics.py" in out.traceback and "launcher/api.py" in out.traceback
    assert HIDDEN_NOTE not in out.traceback


def test_an_interrupted_cell_says_its_job_was_cancelled_in_one_line(
    kernel: KernelClient,
) -> None:
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
    lines = out.error["traceback"]
    assert len(lines) == 2 and lines[1] == HIDDEN_NOTE, lines
    assert lines[0].startswith("KeyboardInterrupt: the cell was interrupted; job ")
    assert lines[0].endswith(" was cancelled")
