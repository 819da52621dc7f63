"""Warm pools on Kubernetes: a pool is a Kubeflow job (the kind KubeflowBackend picks, with its
placement, payload Secret and NetworkPolicy) whose payload is the warm loop of a pod
(`warm_worker.serve_tcp`); the jobs service connects to each rank's pod on RELAY_PORT and relays
cells, output, results, errors, progress and interrupts over frames sealed with the pool's key
(launcher/pool_link.py). The key is the job's record key: made for that one job, kept with its
record, and mounted only into its pods from its Secret. Users' servers never reach the ranks:
they talk to the jobs service (`api/pools`), as in local mode.

The pool's files (cells' results, errors, progress, the ranks' output) are the service's own, in
`{data_dir}/pools/{pool_id}/`, laid out as in local mode, so that the pool manager reads them the
same way. A rank's pod that fails, ends or is deleted breaks the pool (found from its connection
dropping and from the pods' status through the API, whichever comes first).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from kubernetes.client.exceptions import ApiException

from hubflow.jobs.backend import JobFiles, StartError
from hubflow.jobs.kubeflow.backend import KubeflowBackend
from hubflow.jobs.kubeflow.manifests import JOB_LABEL, Placement
from hubflow.jobs.kubeflow.status import container_exit_code, pending_reason, pod_rank
from hubflow.jobs.models import JobRequest
from hubflow.jobs.quota import Refusal
from hubflow.jobs.store import JobRecord
from hubflow.launcher.channel import DirectoryChannel
from hubflow.launcher.contract import MAX_PAYLOAD_BYTES
from hubflow.launcher.payload import Payload
from hubflow.launcher.pool_link import MAC_BYTES, NONCE_BYTES, RELAY_PORT, FrameSeal, new_nonce
from hubflow.launcher.warm_worker import FRAME_SIZE, cell_dir, encode_frame, frame_sizes, serve_tcp
from hubflow.profiles.server_record import ServerRecord
from hubflow.spawner.kube_retry import api_error_message

log = logging.getLogger(__name__)

Obj = dict[str, Any]
#: How long a rank gets to answer the handshake once connected.
HANDSHAKE_S = 10.0
#: How often a pod that does not listen yet (still forming the process group) is tried again.
CONNECT_RETRY_S = 0.2
#: How long the API is asked why a rank's connection dropped before the pool is broken anyway.
WHY_LOST_S = 5.0


class TcpRelay:
    """The service's end of one pool's relay on Kubernetes: a sealed connection to each rank's
    pod; what the ranks send is filed in the pool's directory channel."""

    def __init__(
        self,
        key: bytes,
        channel: DirectoryChannel,
        port: int,
        on_frame: Callable[[dict[str, Any]], None],
        on_lost: Callable[[int, str], Awaitable[None]],
        why_lost: Callable[[str], Awaitable[str]],
    ) -> None:
        self.key = key
        self.channel = channel
        self.port = port
        self.on_frame = on_frame
        self.on_lost = on_lost
        self.why_lost = why_lost
        #: rank -> (writer, seal) of the ranks that said hello.
        self.links: dict[int, tuple[asyncio.StreamWriter, FrameSeal]] = {}
        #: pod name -> rank (None until it said hello) of the pods connected or being connected.
        self.pods: dict[str, int | None] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.logs: dict[int, IO[bytes]] = {}
        self.closed = False
        #: Why ranks are not running yet (the pods' scheduling or container problems).
        self.waiting_for = ""

    @property
    def connected(self) -> int:
        return len(self.links)

    def connect(self, pod: str, ip: str) -> None:
        """Start connecting to a rank's pod (retried until its rank listens)."""
        if pod in self.pods or self.closed:
            return
        self.pods[pod] = None
        task = asyncio.ensure_future(self._follow(pod, ip))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _open(self, ip: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            try:
                return await asyncio.open_connection(ip, self.port)
            except OSError:
                if self.closed:
                    raise
                await asyncio.sleep(CONNECT_RETRY_S)

    @staticmethod
    async def _read(reader: asyncio.StreamReader, seal: FrameSeal) -> tuple[dict[str, Any], bytes]:
        sizes = await reader.readexactly(FRAME_SIZE)
        head_size, body_size = frame_sizes(sizes)
        if body_size > MAX_PAYLOAD_BYTES:  # the rank runs the user's code: bound what it sends
            raise ValueError(f"a frame of {body_size} bytes from a rank")
        head = await reader.readexactly(head_size)
        body = await reader.readexactly(body_size) if body_size else b""
        seal.check(sizes + head + body, await reader.readexactly(MAC_BYTES))
        return json.loads(head), body

    async def _follow(self, pod: str, ip: str) -> None:
        rank: int | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await self._open(ip)
            theirs = await asyncio.wait_for(reader.readexactly(NONCE_BYTES), HANDSHAKE_S)
            ours = new_nonce()
            seal = FrameSeal(self.key, theirs, ours, "service")
            writer.write(ours + seal.seal(encode_frame({"kind": "attach"})))
            hello, _ = await asyncio.wait_for(self._read(reader, seal), HANDSHAKE_S)
            rank = int(hello["rank"])
            if hello.get("kind") != "hello" or rank in self.links:
                raise ValueError(f"unexpected first frame from pod {pod}: {hello}")
            self.pods[pod] = rank
            self.links[rank] = (writer, seal)
            self.on_frame(hello)
            while True:
                header, body = await self._read(reader, seal)
                self._file(rank, header, body)
        except (OSError, ValueError, KeyError, asyncio.IncompleteReadError, TimeoutError) as e:
            log.debug("Pool relay: pod %s (rank %s): %s", pod, rank, e)
        finally:
            if writer is not None:
                writer.close()
            if rank is not None and self.links.get(rank, (None,))[0] is writer:
                del self.links[rank]
                if not self.closed:
                    await self.on_lost(rank, await self.why_lost(pod))

    def _file(self, rank: int, header: dict[str, Any], body: bytes) -> None:
        """Keep what a rank sent in the pool's files; `done` goes to the pool."""
        kind = header.get("kind")
        if kind == "log":
            log_file = self.logs.get(rank)
            if log_file is None:
                path = self.channel.rank_log_path(rank)
                path.parent.mkdir(parents=True, exist_ok=True)
                log_file = self.logs[rank] = open(path, "ab", buffering=0)  # noqa: SIM115
            log_file.write(body)
            return
        if kind == "done":
            self.on_frame({**header, "rank": rank})
            return
        cell = DirectoryChannel(cell_dir(self.channel.root, int(header["cell"])))
        if kind == "result" and rank == 0:
            cell.write_result(body)
        elif kind == "error":
            cell.write_error(rank, json.loads(body))
        elif kind == "progress" and rank == 0:
            cell.write_progress(json.loads(body))

    def _send(self, header: dict[str, Any], body: bytes = b"") -> None:
        frame = encode_frame(header, body)
        for writer, seal in self.links.values():
            writer.write(seal.seal(frame))

    def send_cell(self, cell: int, payload: bytes) -> None:
        """Cell N, with its payload, to every rank."""
        self._send({"kind": "cell", "cell": cell}, payload)

    def send_stop(self) -> None:
        """Every rank leaves its loop; their connections closing is no loss then."""
        self._send({"kind": "stop"})
        self.closed = True

    def interrupt(self) -> None:
        """A KeyboardInterrupt in the cell every rank runs (the rank signals itself)."""
        self._send({"kind": "interrupt"})

    async def close(self) -> None:
        self.closed = True
        for writer, _ in list(self.links.values()):
            writer.close()
        self.links.clear()
        for task in list(self.tasks):
            task.cancel()
        for log_file in self.logs.values():
            log_file.close()


def pod_ended(pod: Obj) -> str:
    """Why a rank's pod cannot run the pool's cells any more ("" while it can)."""
    meta, status = pod["metadata"], pod.get("status") or {}
    name = meta["name"]
    if meta.get("deletionTimestamp"):
        return f"pod {name} deleted"
    phase = status.get("phase", "Pending")
    if phase not in ("Failed", "Succeeded"):
        return ""
    code = container_exit_code(pod)
    reason = status.get("reason") or ""
    for container in status.get("containerStatuses") or []:
        reason = (container.get("state") or {}).get("terminated", {}).get("reason") or reason
    details = ", ".join(x for x in (f"exit code {code}" if code is not None else "", reason) if x)
    return f"pod {name} {phase}{f': {details}' if details else ''}"


class KubePoolBackend(JobFiles):
    """Starts pools as Kubeflow jobs through the service's KubeflowBackend, follows their pods
    and relays their cells."""

    holds_gpus = True  # ranks are pods with GPUs of their own
    max_payload_bytes = MAX_PAYLOAD_BYTES  # cells go over the relay, not in a Secret

    def __init__(self, data_dir: Path, jobs: KubeflowBackend, port: int = RELAY_PORT) -> None:
        super().__init__(data_dir)
        self.jobs_dir = Path(data_dir) / "pools"
        self.jobs = jobs
        self.port = port

    def admit(self, request: JobRequest, server: ServerRecord) -> dict[str, Any]:
        """The job kind and placement, as for a batch job (with the pool's key), marked as a
        pool's (its pods' relay port is opened to the hub's pod)."""
        return {**self.jobs.admit(request, server), "warm_pool": True}

    async def start_pool(
        self,
        job: JobRecord,
        on_frame: Callable[[dict[str, Any]], None],
        on_lost: Callable[[int, str], Awaitable[None]],
    ) -> TcpRelay:
        """Create the pool's job, whose ranks run the warm loop; nothing is left on failure."""
        placement = Placement.from_dict(job.spec)
        self.job_dir(job.id).mkdir(mode=0o700, parents=True)
        relay = TcpRelay(
            bytes.fromhex(placement.record_key),
            self.channel(job.id),
            self.port,
            on_frame,
            on_lost,
            lambda pod: self.why_lost(job, pod),
        )
        payload = Payload(kind="function", function=serve_tcp, args=(self.port, job.framework))
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self._launch, job, payload.dumps()
            )
        except BaseException as e:
            await relay.close()
            self.discard(job.id)
            if isinstance(e, StartError):
                raise Refusal(503, "framework", f"cannot start the pool: {e}") from None
            raise
        return relay

    def _launch(self, job: JobRecord, payload: bytes) -> None:
        """The job's resource, Secret and NetworkPolicy, as for a batch job (its payload is read
        from the jobs backend's files only while it is created)."""
        self.jobs.prepare(job.id, payload)
        try:
            self.jobs.launch(job)
        finally:
            self.jobs.discard(job.id)

    def _pods(self, job: JobRecord) -> list[Obj]:
        placement = Placement.from_dict(job.spec)
        response: Any = self.jobs.core.list_namespaced_pod(
            placement.namespace, label_selector=f"{JOB_LABEL}={job.id}", _preload_content=False
        )
        return list(json.loads(response.data)["items"])

    async def health(self, job: JobRecord, relay: TcpRelay) -> tuple[int | None, str] | None:
        """Connect to ranks whose pods run; a rank whose pod ended or went, and how; None if
        all is well."""
        pods = await asyncio.get_running_loop().run_in_executor(None, self._pods, job)
        if relay.connected < job.workers:
            queue = Placement.from_dict(job.spec).queue
            relay.waiting_for = pending_reason(job.workers, pods, bool(queue and not pods), queue)
        else:
            relay.waiting_for = ""
        seen = set()
        for pod in pods:
            name = pod["metadata"]["name"]
            seen.add(name)
            ended = pod_ended(pod)
            rank = pod_rank(pod)
            if ended and rank is not None:
                return rank, ended
            ip = (pod.get("status") or {}).get("podIP")
            if not ended and ip and pod["status"].get("phase") == "Running":
                relay.connect(name, ip)
        for name, rank in relay.pods.items():
            if name not in seen and rank is not None:
                return rank, f"pod {name} deleted"
        return None

    async def why_lost(self, job: JobRecord, pod: str) -> str:
        """What the API says of a rank's pod whose connection dropped (waiting a little for its
        status to show that it ended)."""
        placement = Placement.from_dict(job.spec)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WHY_LOST_S
        while True:
            try:
                found: Any = await loop.run_in_executor(
                    None,
                    lambda: self.jobs.core.read_namespaced_pod(
                        pod, placement.namespace, _preload_content=False
                    ),
                )
            except ApiException as e:
                if e.status == 404:
                    return f"pod {pod} deleted"
                return f"pod {pod}: {api_error_message(e)}"
            ended = pod_ended(json.loads(found.data))
            if ended or loop.time() > deadline:
                return ended or f"pod {pod}: its connection dropped"
            await asyncio.sleep(0.2)

    async def wait_ended(self, job: JobRecord, relay: TcpRelay, timeout: float) -> None:
        """Wait until the stopped ranks have closed their connections."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while relay.connected:
                    await asyncio.sleep(0.05)

    def write_cell(self, pool_id: str, cell: int, payload: bytes) -> DirectoryChannel:
        """The cell's channel (its payload goes to the ranks in its `cell` frame)."""
        path = cell_dir(self.job_dir(pool_id), cell)
        path.mkdir(mode=0o700, parents=True)
        return DirectoryChannel(path)

    async def cancel(self, job: JobRecord) -> None:
        """Delete the pool's job resource: its pods, Secret and NetworkPolicy go with it."""
        await self.jobs.cancel(job)
