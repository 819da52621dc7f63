"""The local backend of warm pools: a pool's ranks are started exactly like a local job's (the
same supervisor, environment and process handling, so the same isolation), with the warm loop
(launcher/warm_worker.py) as their payload; files under `{data_dir}/pools/{pool_id}/`.

Cells reach the ranks over the pool's relay: a unix socket the service listens on, which only
processes of that pool may use (checked by the kernel's peer credentials on every connection).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hubflow.jobs.local import LocalBackend
from hubflow.jobs.store import JobRecord
from hubflow.launcher.channel import DirectoryChannel
from hubflow.launcher.payload import Payload
from hubflow.launcher.warm_worker import FRAME_SIZE, cell_dir, encode_frame, frame_sizes, serve

log = logging.getLogger(__name__)

_PEERCRED = struct.Struct("3i")


class LocalPoolBackend(LocalBackend):
    """Starts, signals and stops pools' ranks as local processes."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.jobs_dir = Path(data_dir) / "pools"
        self.socket_dir = Path(tempfile.mkdtemp(prefix="hubflow-pools-"))
        self.socket_dir.chmod(0o711)
        atexit.register(shutil.rmtree, self.socket_dir, ignore_errors=True)

    def socket_path(self, pool_id: str) -> str:
        """The pool's relay socket (short: unix socket paths hold 108 bytes at most)."""
        return str(self.socket_dir / f"{pool_id}.sock")

    async def start_pool(
        self,
        job: JobRecord,
        on_frame: Callable[[dict[str, Any]], None],
        on_lost: Callable[[int, str], Awaitable[None]],
    ) -> Relay:
        """Listen on the pool's relay socket, then start the ranks: a job whose payload is the
        warm loop; nothing is left behind on failure."""
        relay = Relay(
            self.socket_path(job.id), lambda pid: self.belongs_to(job, pid), on_frame, on_lost
        )
        await relay.start()
        try:
            payload = Payload(
                kind="function", function=serve, args=(self.socket_path(job.id), job.framework)
            )
            self.prepare(job.id, payload.dumps())
            job.supervisor_pid, job.supervisor_start = self.start(job)
        except BaseException:
            await relay.close()
            self.discard(job.id)
            raise
        return relay

    async def health(self, job: JobRecord, relay: Relay) -> tuple[int | None, str] | None:
        """Broken when the pool's processes have ended (the supervisor's last words)."""
        if self.is_alive(job):
            return None
        tail = self.supervisor_log_tail(job.id, 500).strip().splitlines()
        return None, f"the pool's processes ended{f': {tail[-1]}' if tail else ''}"

    async def wait_ended(self, job: JobRecord, relay: Relay, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.is_alive(job) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def write_cell(self, pool_id: str, cell: int, payload: bytes) -> DirectoryChannel:
        """Put a cell's payload in a new directory `cells/N/` of the pool, owned by the pool's
        account (which owns the pool's directory, so nothing here follows a link); the cell's
        channel, read as the backend reads a job's."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        fds = [os.open(self.job_dir(pool_id), flags)]
        try:
            owner = os.fstat(fds[0])
            with contextlib.suppress(FileExistsError):
                os.mkdir("cells", 0o700, dir_fd=fds[0])
            fds.append(os.open("cells", flags, dir_fd=fds[0]))
            os.mkdir(str(cell), 0o700, dir_fd=fds[1])  # a new directory, never one planted
            fds.append(os.open(str(cell), flags, dir_fd=fds[1]))
            mode = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fds.append(os.open("payload.pkl", mode, 0o600, dir_fd=fds[-1]))
            view = memoryview(payload)
            while view:
                view = view[os.write(fds[-1], view) :]
            if os.geteuid() == 0:
                for fd in fds[1:]:
                    os.fchown(fd, owner.st_uid, owner.st_gid)
        finally:
            for fd in fds:
                os.close(fd)
        return type(self.channel(pool_id))(cell_dir(self.job_dir(pool_id), cell))

    def belongs_to(self, job: JobRecord, pid: int) -> bool:
        """Whether process `pid` is one of the pool's (found by its environment, like a job's)."""
        return pid in self.job_processes(job)


class Relay:
    """The service's end of one pool's relay socket: who is connected, sending cells and stop,
    and handing each `done` frame (or a rank's disconnection) to the pool."""

    def __init__(
        self,
        path: str,
        accept: Callable[[int], bool],
        on_frame: Callable[[dict[str, Any]], None],
        on_lost: Callable[[int, str], Awaitable[None]],
    ) -> None:
        self.path = path
        self.accept = accept
        self.on_frame = on_frame
        self.on_lost = on_lost
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.pids: dict[int, int] = {}
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._connected, self.path)
        os.chmod(self.path, 0o666)  # who may connect is checked per connection

    async def _read(self, reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
        head_size, body_size = frame_sizes(await reader.readexactly(FRAME_SIZE))
        header = json.loads(await reader.readexactly(head_size))
        body = await reader.readexactly(body_size) if body_size else b""
        return header, body

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock: socket.socket = writer.get_extra_info("socket")
        pid, _uid, _gid = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
        if not self.accept(pid):
            log.warning("Relay %s: refused process %d, not one of the pool's", self.path, pid)
            writer.close()
            return
        rank = -1
        try:
            header, _ = await self._read(reader)
            rank = int(header["rank"])
            if header.get("kind") != "hello" or rank in self.writers:
                raise ValueError(f"unexpected first frame {header}")
            self.writers[rank] = writer
            self.pids[rank] = pid
            self.on_frame(header)
            while True:
                header, _ = await self._read(reader)
                header["rank"] = rank
                self.on_frame(header)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, KeyError) as e:
            log.debug("Relay %s: rank %d: %s", self.path, rank, e)
        finally:
            writer.close()
            if self.writers.get(rank) is writer:
                await self.on_lost(rank, f"pid {self.pids.get(rank)}")

    @property
    def connected(self) -> int:
        return len(self.writers)

    @property
    def waiting_for(self) -> str:
        return ""

    def _send(self, header: dict[str, Any]) -> None:
        frame = encode_frame(header)
        for writer in self.writers.values():
            writer.write(frame)

    def send_cell(self, cell: int, payload: bytes) -> None:
        """Cell N to every rank (its payload is in the cell's directory)."""
        self._send({"kind": "cell", "cell": cell})

    def send_stop(self) -> None:
        self._send({"kind": "stop"})

    def interrupt(self) -> None:
        """SIGINT to the ranks: a KeyboardInterrupt in the cell they run."""
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)

    async def close(self) -> None:
        """Stop listening and drop the connections (ranks then leave their loop)."""
        writers, self.writers = list(self.writers.values()), {}
        for writer in writers:
            writer.close()
        if self.server is not None:
            self.server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
