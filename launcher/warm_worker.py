"""The loop a rank of a warm pool runs: connected to the jobs service by the pool's relay
socket, it runs one cell after another in a namespace it keeps, and sends back when each is done.

A pool is started like a job (the supervisor, torchrun, `python -m hubflow.launcher.worker`)
whose payload is `serve(socket_path)`. For `pytorch` pools the process group is formed once,
before the first cell; a cell's own `dist.init_process_group(...)` is then a no-op, so batch
cells run unchanged. Each cell has a directory (`cells/N/` of the pool) used as a job channel:
its payload, rank 0's result, the ranks' errors and `report()` progress. SIGINT interrupts the
running cell (a KeyboardInterrupt in its code) and is ignored between cells.

Frames on the relay socket (both ways): 8 bytes (lengths of header and body), a JSON header,
the body. The service sends {"kind": "cell", "cell": N} and {"kind": "stop"}; a rank sends
{"kind": "hello", "rank": R} once, then {"kind": "done", "cell": N, "rank": R, "ok": bool}.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import types
from pathlib import Path
from typing import Any

import cloudpickle

from hubflow.launcher.channel import DirectoryChannel
from hubflow.launcher.contract import JOB_DIR_ENV, JOB_GPUS_ENV
from hubflow.launcher.payload import Payload
from hubflow.launcher.progress import restart_rate
from hubflow.launcher.worker import collect_result, describe_exception, exec_cell, run_payload

_FRAME = struct.Struct("!II")
#: How many bytes a frame starts with.
FRAME_SIZE = _FRAME.size
#: The largest frame header accepted (headers are small JSON objects).
MAX_HEADER_BYTES = 1 << 16


def encode_frame(header: dict[str, Any], body: bytes = b"") -> bytes:
    """One frame: the lengths, the JSON header, the body."""
    head = json.dumps(header).encode()
    return _FRAME.pack(len(head), len(body)) + head + body


def frame_sizes(data: bytes) -> tuple[int, int]:
    """The header and body lengths a frame starts with (FRAME_SIZE bytes)."""
    head_size, body_size = _FRAME.unpack(data)
    if head_size > MAX_HEADER_BYTES:
        raise ValueError(f"frame header of {head_size} bytes")
    return head_size, body_size


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def read_frame(sock: socket.socket) -> tuple[dict[str, Any], bytes] | None:
    """The next frame from a blocking socket; None when the other side has closed it."""
    sizes = _read_exactly(sock, _FRAME.size)
    if sizes is None:
        return None
    head_size, body_size = frame_sizes(sizes)
    head = _read_exactly(sock, head_size)
    body = _read_exactly(sock, body_size) if body_size else b""
    if head is None or body is None:
        return None
    header: dict[str, Any] = json.loads(head)
    return header, body


def cell_dir(pool_dir: Path | str, cell: int) -> Path:
    """The directory of a pool's cell N: the channel of that cell."""
    return Path(pool_dir) / "cells" / str(cell)


class _Interruptible:
    """SIGINT raises KeyboardInterrupt only while a cell's code runs."""

    def __init__(self) -> None:
        self.in_cell = False
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: types.FrameType | None) -> None:
        if self.in_cell:
            raise KeyboardInterrupt


def _warm_init_process_group(framework: str) -> None:
    """Form the torch process group once (gloo, and nccl for CUDA tensors when the pool has
    GPUs) and make later init_process_group calls no-ops while it exists."""
    if framework != "pytorch":
        return
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if not dist.is_available():
        return
    backend = "cpu:gloo,cuda:nccl" if os.environ.get(JOB_GPUS_ENV) else "gloo"
    dist.init_process_group(backend)
    original = dist.init_process_group

    def init_once(*args: Any, **kwargs: Any) -> None:
        if not dist.is_initialized():
            original(*args, **kwargs)

    dist.init_process_group = init_once  # type: ignore[assignment]


def _strip_own_frames(exc: BaseException) -> BaseException:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return exc.with_traceback(tb)


class WarmRank:
    """One rank's state: its namespace, kept from cell to cell."""

    def __init__(self, pool_dir: Path, rank: int) -> None:
        self.pool_dir = pool_dir
        self.rank = rank
        self.namespace: dict[str, Any] = types.ModuleType("__main__").__dict__
        self.signals = _Interruptible()

    def run(self, cell: int) -> bool:
        """Run cell N from its directory; True if it raised nothing on this rank."""
        channel = DirectoryChannel(cell_dir(self.pool_dir, cell))
        os.environ[JOB_DIR_ENV] = str(channel.root)  # report() writes this cell's progress
        restart_rate()
        try:
            payload: Payload = cloudpickle.loads(channel.read_payload())
            self.signals.in_cell = True
            try:
                if payload.kind == "cell":
                    self.namespace.update(payload.namespace)
                    value = exec_cell(payload.code, self.namespace)
                    namespace = self.namespace
                else:
                    value, namespace = run_payload(payload)
            finally:
                self.signals.in_cell = False
            if self.rank == 0:
                channel.write_result(collect_result(payload, value, namespace))
            return True
        except BaseException as exc:
            error = describe_exception(_strip_own_frames(exc))
            channel.write_error(self.rank, error)
            sys.stderr.write(error["traceback"])
            return False
        finally:
            os.environ[JOB_DIR_ENV] = str(self.pool_dir)
            sys.stdout.flush()
            sys.stderr.flush()


def serve(socket_path: str, framework: str = "pytorch") -> None:
    """A warm rank's life: form the process group, say hello, run cells until told to stop or
    the service goes away."""
    rank = int(os.environ.get("RANK", "0"))
    pool_dir = Path(os.environ[JOB_DIR_ENV])
    warm = WarmRank(pool_dir, rank)
    _warm_init_process_group(framework)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    sock.sendall(encode_frame({"kind": "hello", "rank": rank, "pid": os.getpid()}))
    while True:
        frame = read_frame(sock)
        if frame is None or frame[0].get("kind") == "stop":
            break
        cell = int(frame[0]["cell"])
        ok = warm.run(cell)
        sock.sendall(encode_frame({"kind": "done", "cell": cell, "rank": rank, "ok": ok}))
    sock.close()
