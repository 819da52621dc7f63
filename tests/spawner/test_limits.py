"""CPU and memory limits with this machine's real cgroups: a memory hog is killed at its limit, a
busy loop gets no more CPU than its quota, and a machine without cgroups says why."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubflow.launcher.runas import run_as
from hubflow.spawner.limits import Cgroups, Hierarchy

cgroups = Cgroups.detect()
needs_cgroups = pytest.mark.skipif(not cgroups.enforced, reason=cgroups.reason)


@pytest.fixture
def group() -> object:
    name = f"hftest@{os.getpid()}"
    yield name
    cgroups.kill(name)
    time.sleep(0.2)
    cgroups.remove(name)
    assert not any(path.exists() for path in cgroups.paths(name))


@needs_cgroups
def test_a_memory_hog_is_killed_at_its_limit(group: str) -> None:
    procs = cgroups.create(group, cpu_limit=None, mem_limit=200 * 2**20)
    hog = "x = b'x' * (600 << 20)\nprint('survived')"
    done = subprocess.run(
        [sys.executable, "-c", hog], preexec_fn=run_as({"cgroups": procs}), capture_output=True
    )
    assert done.returncode == -9, done
    assert b"survived" not in done.stdout
    # within the limit the same process lives
    fits = subprocess.run(
        [sys.executable, "-c", "x = b'x' * (50 << 20)\nprint('survived')"],
        preexec_fn=run_as({"cgroups": procs}),
        capture_output=True,
    )
    assert fits.stdout.strip() == b"survived"


@needs_cgroups
def test_a_busy_loop_gets_no_more_cpu_than_its_quota(group: str) -> None:
    procs = cgroups.create(group, cpu_limit=0.2, mem_limit=None)
    loop = "import time\nend = time.monotonic() + 2\nwhile time.monotonic() < end: pass\n"
    child = subprocess.Popen([sys.executable, "-c", loop], preexec_fn=run_as({"cgroups": procs}))
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = status
    cpu = usage.ru_utime + usage.ru_stime
    assert cpu < 0.2 * 2 + 0.35, f"{cpu:.2f}s of CPU in 2s at 0.2 cores"


def test_without_cgroup_controllers_limits_are_said_not_enforced(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    detected = Cgroups.detect(str(mounts))
    assert not detected.enforced
    assert "cgroup" in detected.reason or "root" in detected.reason


def test_limit_files_for_cgroup_v1_and_v2() -> None:
    v1 = Hierarchy("memory", Path("/x"), v2=False).limit_files(None, 2**30)
    assert v1 == {"memory.limit_in_bytes": str(2**30)}
    v2 = Hierarchy("cpu", Path("/x"), v2=True).limit_files(1.5, None)
    assert v2 == {"cpu.max": "150000 100000"}
    assert Hierarchy("cpu", Path("/x"), v2=False).limit_files(None, None) == {
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
    }
