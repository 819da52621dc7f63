"""The local spawner's process details that need no hub: --allow-root, names, GPU hand-out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hubflow.spawner.accounts import Account
from hubflow.spawner.gpus import Gpu, GpuAllocator, GpuUnavailable, parse_gpu_list
from hubflow.spawner.local import HubflowLocalSpawner, escaped_name


def spawner() -> HubflowLocalSpawner:
    user = SimpleNamespace(name="alice", groups=[], admin=False, settings={}, spawners={})
    return HubflowLocalSpawner(user=user, orm_spawner=None)


@pytest.mark.parametrize(("uid", "allowed"), [(0, True), (1000, False)])
def test_allow_root_only_for_a_server_that_runs_as_root(uid: int, allowed: bool) -> None:
    local = spawner()
    local.account = Account("someone", uid, uid, ())
    assert ("--allow-root" in local.get_args()) is allowed


def test_escaped_names_are_distinct_and_file_system_safe() -> None:
    names = ["alice", "Alice", "a.lice", "a-lice", "al/ice", "alice@example.com"]
    escaped = [escaped_name(n) for n in names]
    assert len(set(escaped)) == len(names)
    assert all("/" not in e and "." not in e for e in escaped)


def test_gpus_are_not_shared_unless_both_allow_it() -> None:
    allocator = GpuAllocator(parse_gpu_list("0:NVIDIA-A100,1:NVIDIA-A100,2:NVIDIA-H100"))
    assert allocator.allocate("a/", 1, "A100", shared=False) == ["0"]
    assert allocator.allocate("b/", 1, "a100", shared=True) == ["1"]
    assert allocator.allocate("c/", 1, "A100", shared=True) == ["1"]  # both share GPU 1
    with pytest.raises(GpuUnavailable, match="asked for 1 × A100, 0 of 2 free"):
        allocator.allocate("d/", 1, "A100", shared=False)
    assert allocator.availability() == {"NVIDIA-A100": (0, 2), "NVIDIA-H100": (1, 1)}
    allocator.release("a/")
    assert allocator.free("A100") == [Gpu("0", "NVIDIA-A100")]


@pytest.mark.parametrize("text", ["0", "0:", ":A100", "0:A100,,x"])
def test_a_bad_gpu_list_names_the_setting(text: str) -> None:
    with pytest.raises(ValueError, match="HUBFLOW_GPUS"):
        parse_gpu_list(text)
