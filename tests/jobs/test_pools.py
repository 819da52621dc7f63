"""Warm pools in the jobs service with real torchrun ranks: the relay, state kept between cells,
interrupts, a killed rank, idle release, and who may connect to a pool's relay."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from hubflow.hub.settings import JobsSettings
from hubflow.jobs.local_pool import LocalPoolBackend
from hubflow.jobs.pools import BROKEN, IDLE, STOPPED, Pool, PoolManager
from hubflow.jobs.quota import Refusal
from hubflow.jobs.store import JobRecord, new_job_id
from hubflow.launcher.payload import cell_payload
from hubflow.launcher.warm_worker import encode_frame


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[PoolManager]:
    manager = PoolManager(LocalPoolBackend(tmp_path / "data"), JobsSettings())
    yield manager
    for pool in list(manager.pools.values()):
        await manager.stop(pool, STOPPED, "test over")


def pool_job(tmp_path: Path, environment: dict[str, str] | None = None) -> JobRecord:
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    return JobRecord(
        id=new_job_id(),
        user="alice",
        server_name="",
        name="",
        framework="pytorch",
        workers=2,
        gpus_per_worker=0,
        gpus=[],
        groups=[],
        workspace=str(workspace),
        environment=environment or {},
        spec={},
        state="Pending",
        created=time.time(),
    )


async def start(manager: PoolManager, tmp_path: Path, idle_timeout: int = 600) -> Pool:
    pool, key = await manager.create(pool_job(tmp_path), idle_timeout)
    assert manager.key_matches(pool, key) and not manager.key_matches(pool, key + "x")
    await asyncio.wait_for(pool.ready.wait(), 180)
    assert pool.state == IDLE
    return pool


async def run(
    manager: PoolManager, pool: Pool, code: str, pull: tuple[str, ...] = ()
) -> dict[str, Any]:
    cell = await manager.run_cell(pool, cell_payload(code, {}, pull=list(pull)).dumps())
    await asyncio.wait_for(cell.finished.wait(), 120)
    outcome = manager.outcome(pool, cell)
    if outcome["state"] == "Succeeded":
        outcome["result"] = cloudpickle.loads(base64.b64decode(outcome["result"]))
    return outcome


PIDS = (
    "import os, torch.distributed as dist\npids = [None] * dist.get_world_size()\n"
    "dist.all_gather_object(pids, os.getpid())\n"
)


async def test_cells_run_on_the_same_ranks_which_keep_their_namespace(
    manager: PoolManager, tmp_path: Path
) -> None:
    pool = await start(manager, tmp_path)
    first = await run(manager, pool, PIDS + "import torch\nsteps = 0\nprint('loaded')\n", ("pids",))
    assert first["state"] == "Succeeded", first
    pids = first["result"]["variables"]["pids"]
    for step in (1, 2, 3):
        out = await run(
            manager,
            pool,
            "steps += 1\nt = torch.tensor([float(steps)])\ndist.all_reduce(t)\n"
            + PIDS
            + "print('step', steps)\nt.item()\n",
            ("pids",),
        )
        assert out["result"] == {"value": 2.0 * step, "variables": {"pids": pids}}
    # each cell's log lines start where the previous cell's ended
    cell = await manager.run_cell(pool, cell_payload("print('last')\n", {}).dumps())
    await cell.finished.wait()
    chunk = manager.backend.read_log(pool.id, 1, cell.log_offsets[1], final=True)
    assert [line for _, line in chunk.lines] == ["last"]
    assert pool.cells == 5 and pool.state == IDLE
    assert manager.busy_pools() == []  # an idle pool does not keep its server from culling

    failed = await run(manager, pool, "if dist.get_rank() == 1:\n    raise KeyError('shard')\n")
    assert failed["state"] == "Failed" and failed["failing_rank"] == 1
    assert (
        "KeyError" in failed["error"]["type"] and "warm_worker" not in failed["error"]["traceback"]
    )
    again = await run(manager, pool, "steps\n")
    assert again["result"]["value"] == 3  # a failed cell leaves the state


async def test_interrupt_raises_in_the_cell_and_the_pool_stays(
    manager: PoolManager, tmp_path: Path
) -> None:
    pool = await start(manager, tmp_path)
    await run(manager, pool, "counter = 0\n")
    cell = await manager.run_cell(
        pool,
        cell_payload(
            "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
            "    counter += 1\n    raise\n",
            {},
        ).dumps(),
    )
    with pytest.raises(Refusal, match="still running cell 2"):
        await manager.run_cell(pool, cell_payload("1\n", {}).dumps())
    assert manager.busy_pools() == [pool]  # the culler keeps a server whose pool is busy
    await asyncio.sleep(1.0)
    assert manager.interrupt(pool)
    await asyncio.wait_for(cell.finished.wait(), 30)
    outcome = manager.outcome(pool, cell)
    assert outcome["interrupted"] and outcome["error"]["type"] == "builtins.KeyboardInterrupt"
    assert (await run(manager, pool, "counter\n"))["result"]["value"] == 1
    # between cells an interrupt is ignored: the next cell runs normally
    assert not manager.interrupt(pool)
    pool.relay.interrupt()  # type: ignore[union-attr]
    await asyncio.sleep(0.3)
    assert (await run(manager, pool, "counter + 1\n"))["result"]["value"] == 2


async def test_a_killed_rank_breaks_the_pool_and_stops_the_others(
    manager: PoolManager, tmp_path: Path
) -> None:
    pool = await start(manager, tmp_path)
    pids = (await run(manager, pool, PIDS, ("pids",)))["result"]["variables"]["pids"]
    os.kill(pids[1], signal.SIGKILL)
    await asyncio.wait_for(pool.ended.wait(), 30)
    assert pool.state == BROKEN and pool.broken_rank == 1
    assert pool.reason == f"rank 1 (pid {pids[1]}) ended while idle"
    assert not manager.backend.job_processes(pool.job)
    with pytest.raises(Refusal, match="is broken: rank 1 .* --warm --restart"):
        await manager.run_cell(pool, cell_payload("1\n", {}).dumps())
    assert manager.busy_pools() == []


async def test_a_cell_waiting_for_ranks_that_never_start_is_told_why(
    manager: PoolManager, tmp_path: Path
) -> None:
    pool, _ = await manager.create(pool_job(tmp_path, {"PYTHONHOME": "/nowhere"}), 600)
    started = time.monotonic()
    with pytest.raises(Refusal, match="is broken: the pool's processes ended"):
        await manager.run_cell(pool, cell_payload("1\n", {}).dumps())
    assert time.monotonic() - started < 30 and pool.state == BROKEN


async def test_an_idle_pool_is_released_after_its_timeout(
    manager: PoolManager, tmp_path: Path
) -> None:
    pool = await start(manager, tmp_path, idle_timeout=2)
    model = pool.to_model()
    assert model["releases_at"] and model["warn_at"] and model["idle_timeout"] == 2
    await asyncio.wait_for(pool.ended.wait(), 20)
    assert pool.state == STOPPED and pool.reason == "released after 2s idle"
    assert not manager.backend.job_processes(pool.job)


async def test_only_the_pools_processes_may_join_its_relay(
    manager: PoolManager, tmp_path: Path
) -> None:
    pool = await start(manager, tmp_path)
    reader, writer = await asyncio.open_unix_connection(manager.backend.socket_path(pool.id))
    writer.write(encode_frame({"kind": "hello", "rank": 5}))
    try:  # refused: this test process is not one of the pool's
        answer = await asyncio.wait_for(reader.read(1), 10)
    except ConnectionResetError:
        answer = b""
    assert answer == b""
    writer.close()
    assert sorted(pool.relay.writers) == [0, 1]  # type: ignore[union-attr]


def test_a_cell_directory_is_never_one_planted_in_advance(tmp_path: Path) -> None:
    backend = LocalPoolBackend(tmp_path / "data")
    backend.prepare("0123456789ab", b"payload")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (backend.job_dir("0123456789ab") / "cells").mkdir()
    (backend.job_dir("0123456789ab") / "cells" / "1").symlink_to(target)
    with pytest.raises(FileExistsError):
        backend.write_cell("0123456789ab", 1, b"cell")
    assert not list(target.iterdir())
    channel = backend.write_cell("0123456789ab", 2, b"cell")
    assert channel.read_payload() == b"cell"
