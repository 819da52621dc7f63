"""The relay of a pool on Kubernetes: frames sealed with the pool's key (launcher/pool_link.py),
and a real rank (`serve_tcp`, as a pod runs it) that serves only the jobs service's end
(`TcpRelay`) holding that key: a peer without it is dropped and cannot send it cells."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from hubflow.jobs.kubeflow.pools import TcpRelay
from hubflow.launcher.channel import DirectoryChannel
from hubflow.launcher.contract import JOB_RECORD_KEY_ENV
from hubflow.launcher.payload import cell_payload
from hubflow.launcher.pool_link import FrameSeal, new_nonce
from hubflow.launcher.warm_worker import cell_dir, encode_frame

KEY = b"k" * 32


def _pair(key: bytes = KEY) -> tuple[FrameSeal, FrameSeal]:
    rank_nonce, service_nonce = new_nonce(), new_nonce()
    return (
        FrameSeal(key, rank_nonce, service_nonce, "rank"),
        FrameSeal(KEY, rank_nonce, service_nonce, "service"),
    )


def _split(sealed: bytes) -> tuple[bytes, bytes]:
    return sealed[:-32], sealed[-32:]


def test_a_sealed_frame_passes_once_in_order_and_in_its_direction() -> None:
    rank, service = _pair()
    first, second = encode_frame({"kind": "hello", "rank": 0}), encode_frame({"kind": "done"})
    sealed_first, sealed_second = rank.seal(first), rank.seal(second)
    with pytest.raises(ValueError):  # out of order
        service.check(*_split(sealed_second))
    service.check(*_split(sealed_first))
    with pytest.raises(ValueError):  # replayed
        service.check(*_split(sealed_first))
    service.check(*_split(sealed_second))
    back = service.seal(encode_frame({"kind": "cell", "cell": 1}))
    with pytest.raises(ValueError):  # sent back the way it came
        service.check(*_split(back))
    rank.check(*_split(back))


def test_a_frame_sealed_without_the_pools_key_or_changed_fails() -> None:
    stranger, service = _pair(key=b"x" * 32)
    with pytest.raises(ValueError):
        service.check(*_split(stranger.seal(encode_frame({"kind": "hello", "rank": 0}))))
    rank, service = _pair()
    frame, mac = _split(rank.seal(encode_frame({"kind": "result", "cell": 1}, b"41")))
    with pytest.raises(ValueError):
        service.check(frame[:-1] + b"2", mac)
    with pytest.raises(ValueError):
        FrameSeal(b"", new_nonce(), new_nonce(), "rank")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def rank(tmp_path: Path) -> Iterator[int]:
    """A rank of a pool as a pod runs it (no process group), listening on a free port."""
    (tmp_path / "key").write_bytes(KEY)
    port = _free_port()
    env = {**os.environ, "RANK": "0", JOB_RECORD_KEY_ENV: str(tmp_path / "key")}
    code = f"from hubflow.launcher.warm_worker import serve_tcp; serve_tcp({port}, 'none')"
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    yield port
    process.kill()
    process.wait()


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    for _ in range(200):
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError("the rank does not listen")


async def test_a_rank_drops_a_peer_without_the_key_and_serves_the_jobs_service(
    rank: int, tmp_path: Path
) -> None:
    reader, writer = await _connect(rank)
    theirs = await reader.readexactly(16)
    ours = new_nonce()
    forged = FrameSeal(b"w" * 32, theirs, ours, "service")
    writer.write(ours + forged.seal(encode_frame({"kind": "attach"})))
    assert await asyncio.wait_for(reader.read(), 10) == b""  # dropped, no hello
    writer.close()

    frames: list[dict] = []
    done = asyncio.Event()

    def on_frame(frame: dict) -> None:
        frames.append(frame)
        if frame["kind"] == "done":
            done.set()

    async def on_lost(rank: int, what: str) -> None:
        frames.append({"kind": "lost", "rank": rank})

    async def why_lost(pod: str) -> str:
        return "gone"

    channel = DirectoryChannel(tmp_path / "pool")
    relay = TcpRelay(KEY, channel, rank, on_frame, on_lost, why_lost)
    relay.connect("pod-0", "127.0.0.1")
    await asyncio.wait_for(_until(lambda: relay.connected == 1), 30)
    assert frames[0]["kind"] == "hello" and frames[0]["rank"] == 0
    cell_dir(channel.root, 1).mkdir(parents=True)
    relay.send_cell(1, cell_payload("x = 41\nprint('ran')\nx + 1\n", {}).dumps())
    await asyncio.wait_for(done.wait(), 30)
    result = DirectoryChannel(cell_dir(channel.root, 1)).read_result()
    assert result is not None and cloudpickle.loads(result)["value"] == 42
    assert channel.rank_log_path(0).read_text() == "ran\n"
    relay.send_stop()
    await asyncio.wait_for(_until(lambda: relay.connected == 0), 10)
    await relay.close()


async def _until(predicate) -> None:  # type: ignore[no-untyped-def]
    while not predicate():
        await asyncio.sleep(0.02)
