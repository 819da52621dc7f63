"""The loop a rank of a warm pool runs: connected to the jobs service by the pool's relay, it
runs one cell after another in a namespace it keeps, and sends back when each is done.

A pool is started like a job (the supervisor, torchrun, `python -m hubflow.launcher.worker`)
whose payload is `serve(socket_path)`. For `pytorch` pools the process group is formed once,
before the first cell; a cell's own `dist.init_process_group(...)` is then a no-op, so batch
cells run unchanged. Each cell has a directory (`cells/N/` of the pool) used as a job channel:
its payload, rank 0's result, the ranks' errors and `report()` progress. SIGINT interrupts the
running cell (a KeyboardInterrupt in its code) and is ignored between cells.

Frames on the relay socket (both ways): 8 bytes (lengths of header and body), a JSON header,
the body. The service sends {"kind": "cell", "cell": N} and {"kind": "stop"}; a rank sends
{"kind": "hello", "rank": R} once, then {"kind": "done", "cell": N, "rank": R, "ok": bool}.

In a pod (`serve_tcp`, Kubernetes mode) there is no shared directory: the rank listens on
RELAY_PORT, the jobs service connects to it, and every frame is sealed with the pool's key
(launcher/pool_link.py). The cell's payload comes as the body of its `cell` frame, and the rank
sends back, before `done`, its output ({"kind": "log"}, body: the text), rank 0's result
({"kind": "result"}), its error ({"kind": "error"}) and `report()` progress ({"kind":
"progress"}), each with "cell": N; the service interrupts with {"kind": "interrupt"}.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import signal
import socket
import struct
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle

from hubflow.launcher import channel as channels
from hubflow.launcher.channel import DirectoryChannel, RankChannel
from hubflow.launcher.contract import JOB_DIR_ENV, JOB_GPUS_ENV, JOB_RECORD_KEY_ENV
from hubflow.launcher.payload import Payload
from hubflow.launcher.pool_link import MAC_BYTES, NONCE_BYTES, RELAY_PORT, FrameSeal, new_nonce
from hubflow.launcher.progress import restart_rate
from hubflow.launcher.worker import collect_result, describe_exception, exec_cell, run_payload

_FRAME = struct.Struct("!II")
#: How many bytes a frame starts with.
FRAME_SIZE = _FRAME.size
#: The largest frame header accepted (headers are small JSON objects).
MAX_HEADER_BYTES = 1 << 16
#: How long a rank in a pod waits for the jobs service to attach before it ends.
ATTACH_TIMEOUT_S = 600.0


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


def read_frame(
    sock: socket.socket, seal: FrameSeal | None = None
) -> tuple[dict[str, Any], bytes] | None:
    """The next frame from a blocking socket (checked against `seal` when given); None when the
    other side has closed it."""
    sizes = _read_exactly(sock, _FRAME.size)
    if sizes is None:
        return None
    head_size, body_size = frame_sizes(sizes)
    head = _read_exactly(sock, head_size)
    body = _read_exactly(sock, body_size) if body_size else b""
    if head is None or body is None:
        return None
    if seal is not None:
        mac = _read_exactly(sock, MAC_BYTES)
        if mac is None:
            return None
        seal.check(sizes + head + body, mac)
    header: dict[str, Any] = json.loads(head)
    return header, body


def cell_dir(pool_dir: Path | str, cell: int) -> Path:
    """The directory of a pool's cell N: the channel of that cell."""
    return Path(pool_dir) / "cells" / str(cell)


class _Interruptible:
    """SIGINT raises KeyboardInterrupt only while a cell's code runs, and never in the middle of
    a frame being sent (it is raised once the frame is out)."""

    def __init__(self) -> None:
        self.in_cell = False
        self.holding = False
        self.pending = False
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: types.FrameType | None) -> None:
        if self.holding:
            self.pending = True
        elif self.in_cell:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Defer an interrupt to the end of the block (only the main thread gets signals)."""
        if threading.current_thread() is not threading.main_thread() or self.holding:
            yield
            return
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            if self.pending:
                self.pending = False
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

    def __init__(self, pool_dir: Path | None, rank: int) -> None:
        self.pool_dir = pool_dir
        self.rank = rank
        self.namespace: dict[str, Any] = types.ModuleType("__main__").__dict__
        self.signals = _Interruptible()

    def run(self, cell: int) -> bool:
        """Run cell N from its directory; True if it raised nothing on this rank."""
        assert self.pool_dir is not None, "a rank in a pod has no pool directory"
        channel = DirectoryChannel(cell_dir(self.pool_dir, cell))
        os.environ[JOB_DIR_ENV] = str(channel.root)  # report() writes this cell's progress
        try:
            return self.run_on(channel)
        finally:
            os.environ[JOB_DIR_ENV] = str(self.pool_dir)

    def run_on(self, channel: RankChannel) -> bool:
        """Run the cell `channel` gives; True if it raised nothing on this rank."""
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


# -- in a pod: the relay over TCP ---------------------------------------------------------------
class _Link:
    """The rank's end of its connection to the jobs service: sealed frames out, one at a time."""

    def __init__(self, sock: socket.socket, seal: FrameSeal, signals: _Interruptible) -> None:
        self.sock = sock
        self.seal = seal
        self.signals = signals
        self.lock = threading.Lock()

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        with self.signals.held(), self.lock:
            self.sock.sendall(self.seal.seal(encode_frame(header, body)))


class _RelayedOutput(io.TextIOBase):
    """A rank's stdout or stderr: written to the pod's log as before, and each complete line
    (the rest at flush) sent to the service as the cell's output."""

    def __init__(self, stream: Any, link: _Link, rank: int) -> None:
        self.stream = stream
        self.link = link
        self.rank = rank
        self.pending = ""
        self.lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.stream.write(text)
        with self.lock:
            self.pending += text
            if "\n" not in self.pending:
                return len(text)
            done, _, self.pending = self.pending.rpartition("\n")
        self._send(done + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        with self.lock:
            rest, self.pending = self.pending, ""
        if rest:
            self._send(rest)

    def _send(self, text: str) -> None:
        self.link.send({"kind": "log", "rank": self.rank}, text.encode(errors="replace"))


class RelayChannel:
    """The channel of one cell on a rank in a pod: the payload from its `cell` frame, the rest
    sent back on the relay."""

    def __init__(self, link: _Link, cell: int, payload: bytes) -> None:
        self.link = link
        self.cell = cell
        self.payload = payload

    def attach_output(self, rank: int) -> None:
        """Output is relayed for the whole life of the rank (serve_tcp)."""

    def mark_started(self, rank: int) -> None:
        """Warm ranks have started long before a cell."""

    def read_payload(self) -> bytes:
        return self.payload

    def write_result(self, data: bytes) -> None:
        self.link.send({"kind": "result", "cell": self.cell}, data)

    def write_summary(self, text: str) -> None:
        """A cell's owner gets its result; no summary is kept."""

    def write_error(self, rank: int, error: dict[str, Any]) -> None:
        self.link.send(
            {"kind": "error", "cell": self.cell, "rank": rank}, json.dumps(error).encode()
        )

    def write_progress(self, progress: dict[str, Any]) -> None:
        self.link.send({"kind": "progress", "cell": self.cell}, json.dumps(progress).encode())


def _attach(listener: socket.socket, key: bytes, rank: int, signals: _Interruptible) -> _Link:
    """Wait for the jobs service: the first connection that proves it holds the pool's key
    (TimeoutError after ATTACH_TIMEOUT_S: a service gone before it attached leaves no pod
    running)."""
    listener.settimeout(ATTACH_TIMEOUT_S)
    while True:
        try:
            sock, _ = listener.accept()
        except TimeoutError:
            raise TimeoutError(
                f"the jobs service did not attach to this pool's rank in {ATTACH_TIMEOUT_S:.0f}s"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames go at once
        sock.settimeout(10)  # a peer that says nothing is dropped
        try:
            nonce = new_nonce()
            sock.sendall(nonce)
            theirs = _read_exactly(sock, NONCE_BYTES)
            if theirs is None:
                raise ConnectionError("closed during the handshake")
            seal = FrameSeal(key, nonce, theirs, "rank")
            frame = read_frame(sock, seal)
            if frame is None or frame[0].get("kind") != "attach":
                raise ConnectionError("no attach frame")
        except (OSError, ValueError) as e:
            sys.stderr.write(f"hubflow warm rank {rank}: refused a connection: {e}\n")
            sock.close()
            continue
        sock.settimeout(None)
        link = _Link(sock, seal, signals)
        link.send({"kind": "hello", "rank": rank, "pid": os.getpid()})
        return link


def _read_frames(link: _Link, cells: queue.Queue[tuple[int, bytes] | None]) -> None:
    """The rank's reader thread: cells to the main thread, interrupts as SIGINT to it; None
    when told to stop or when the service has gone (or sent a frame that fails its check)."""
    try:
        while True:
            frame = read_frame(link.sock, link.seal)
            if frame is None or frame[0].get("kind") == "stop":
                break
            header, body = frame
            if header.get("kind") == "interrupt":
                os.kill(os.getpid(), signal.SIGINT)
            elif header.get("kind") == "cell":
                cells.put((int(header["cell"]), body))
    except (OSError, ValueError) as e:
        os.write(2, f"hubflow warm rank: relay closed: {e}\n".encode())
    finally:
        cells.put(None)


def serve_tcp(port: int = RELAY_PORT, framework: str = "pytorch") -> None:
    """A warm rank's life in a pod: form the process group, listen on `port` until the jobs
    service attaches (proving it holds the pool's key, from the file JOB_RECORD_KEY_ENV names),
    then run cells until told to stop or the service goes away."""
    rank = int(os.environ.get("RANK", "0"))
    key = Path(os.environ[JOB_RECORD_KEY_ENV]).read_bytes()
    warm = WarmRank(None, rank)
    _warm_init_process_group(framework)
    listener = socket.create_server(("", port), reuse_port=False)
    link = _attach(listener, key, rank, warm.signals)
    listener.close()
    out, err = sys.stdout, sys.stderr
    sys.stdout = _RelayedOutput(out, link, rank)
    sys.stderr = _RelayedOutput(err, link, rank)
    cells: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
    threading.Thread(target=_read_frames, args=(link, cells), daemon=True).start()
    try:
        while (item := cells.get()) is not None:
            cell, payload = item
            channel = RelayChannel(link, cell, payload)
            channels.use_channel(channel)  # report() sends this cell's progress
            try:
                ok = warm.run_on(channel)
            finally:
                channels.use_channel(None)
            link.send({"kind": "done", "cell": cell, "rank": rank, "ok": ok})
    finally:
        sys.stdout, sys.stderr = out, err
        link.sock.close()
