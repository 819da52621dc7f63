"""Per-rank logs from the pods: one thread per rank follows its pod's log from the moment its
container starts (so a rank whose pod starts late is not skipped), writes the text to the rank's
log file in the service's job directory, and files the ranks' framed records (result, errors,
progress) into the job's channel."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import kubernetes.client
import urllib3
from kubernetes.client.exceptions import ApiException

from hubflow.jobs.backend import MAX_LOG_LINE
from hubflow.jobs.kubeflow.status import container_started, ranked_pods
from hubflow.launcher.channel import (
    RECORD_MARKER,
    DirectoryChannel,
    file_record,
    split_record,
)

log = logging.getLogger(__name__)

#: How long a follower waits before reconnecting a cut log stream.
RECONNECT_S = 0.5
#: The longest line holding a record (started, error, progress) a rank's log may send.
MAX_RECORD_LINE = 1 << 20
#: The largest result a job on Kubeflow can return (rank 0 sends it as one record line in its
#: log; a larger one is text of the log, and the job has no result).
MAX_RESULT_BYTES = 64 * 2**20
#: The longest line holding a record of rank 0's (its result, in base64).
MAX_RESULT_LINE = 4 * -(-MAX_RESULT_BYTES // 3) + 1024


class LineBuffer:
    """Cuts a byte stream into lines, holding little of a line that has not ended: a text line
    past `max_line` bytes is let through in pieces as it arrives (the rank's log file keeps it
    whole, and the logs API cuts it as it cuts any long line: `JobFiles.read_log`); only a line
    holding a record waits for its end, up to `max_record` bytes, past which it is text as well.
    Linear in the stream's length: each chunk is searched once."""

    def __init__(self, max_line: int = MAX_LOG_LINE, max_record: int = MAX_RECORD_LINE) -> None:
        self.max_line, self.max_record = max_line, max_record
        self.partial = bytearray()
        #: Where a record starts in `partial` (None: no record there).
        self.record_at: int | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines `chunk` completes (with their line ends) and the pieces of a long text line
        it lets through (without); together, every byte of the stream once, in order."""
        cut = chunk.rfind(b"\n") + 1
        if cut:
            complete, self.partial = bytes(self.partial + chunk[:cut]), bytearray(chunk[cut:])
            lines = complete.splitlines(keepends=True)
            self.record_at = None
            self._find_record(0)
        else:
            lines = []
            searched = max(len(self.partial) - len(RECORD_MARKER) + 1, 0)
            self.partial += chunk
            self._find_record(searched)
        return lines + self._let_through()

    def _find_record(self, start: int) -> None:
        if self.record_at is None:
            found = self.partial.find(RECORD_MARKER, start)
            self.record_at = found if found >= 0 else None

    def _let_through(self) -> list[bytes]:
        """Text of the unfinished line past `max_line` (a record past `max_record` is text),
        all but a tail that may begin a record."""
        held = len(self.partial)
        record = self.record_at
        if held <= self.max_line or (record is not None and held - record <= self.max_record):
            return []
        cut = held - (len(RECORD_MARKER) - 1)
        piece = bytes(self.partial[:cut])
        del self.partial[:cut]
        self.record_at = None
        return [piece]


class RankLog(threading.Thread):
    """Follows one rank's pod log until its container has ended and the log is read to the end."""

    def __init__(
        self,
        core: kubernetes.client.CoreV1Api,
        namespace: str,
        pod: str,
        container: str,
        rank: int,
        channel: DirectoryChannel,
        key: bytes,
    ) -> None:
        super().__init__(name=f"log-{pod}", daemon=True)
        self.core, self.namespace, self.pod, self.container = core, namespace, pod, container
        self.rank, self.channel, self.key = rank, channel, key
        self.stopping = threading.Event()
        self.done = threading.Event()
        #: Whether the log file's last line has not ended (a long line let through in pieces).
        self.line_open = False

    def run(self) -> None:
        path = self.channel.rank_log_path(self.rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        processed = 0  # bytes of the pod log already handled, skipped on a reconnect
        try:
            with open(path, "wb") as out:  # the pod log is read from its start every time
                while not self.stopping.is_set():
                    processed, ended = self._follow_once(out, processed)
                    if ended or self._container_gone():
                        self._follow_once(out, processed, last=True)
                        return
                    self.stopping.wait(RECONNECT_S)
        except Exception:
            log.exception("Following the log of pod %s failed", self.pod)
        finally:
            self.done.set()

    def _follow_once(self, out: Any, processed: int, last: bool = False) -> tuple[int, bool]:
        """Read the log (following it unless `last`) past `processed` bytes; return the bytes
        handled and whether the stream ended normally with the container ended."""
        try:
            response: Any = self.core.read_namespaced_pod_log(
                self.pod,
                self.namespace,
                container=self.container,
                follow=not last,
                _preload_content=False,
            )
        except ApiException as e:
            if e.status in (400, 404):  # not started yet, or gone
                return processed, e.status == 404
            raise
        skip = processed
        buffer = LineBuffer(max_record=MAX_RESULT_LINE if self.rank == 0 else MAX_RECORD_LINE)
        try:
            for chunk in response.stream(1 << 16):
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                for line in buffer.feed(chunk):
                    self._handle(out, line)
                    processed += len(line)
                if self.stopping.is_set():
                    return processed, False
        except (urllib3.exceptions.HTTPError, OSError):
            return processed, False
        finally:
            response.release_conn()
        if last and buffer.partial:
            self._handle(out, bytes(buffer.partial))
            processed += len(buffer.partial)
        return processed, self._container_gone()

    def _handle(self, out: Any, line: bytes) -> None:
        text, record = split_record(line, self.key)
        if record is not None:
            file_record(self.channel, record)
            if text or self.line_open:  # the record ends a line of text (sent in pieces)
                out.write(text + b"\n")
            self.line_open = False
        else:
            out.write(line)
            self.line_open = not line.endswith((b"\n", b"\r"))
        out.flush()

    def _container_gone(self) -> bool:
        """Whether the container has ended (or the pod is gone): its log will not grow."""
        try:
            pod = self.core.read_namespaced_pod(self.pod, self.namespace)
        except ApiException as e:
            return e.status == 404
        statuses = (pod.status.container_statuses if pod.status else None) or []
        return any(
            status.name == self.container and status.state and status.state.terminated
            for status in statuses
        )


class JobLogs:
    """The rank followers of one job."""

    def __init__(
        self,
        core: kubernetes.client.CoreV1Api,
        namespace: str,
        container: str,
        channel: DirectoryChannel,
        key: bytes,
    ) -> None:
        """Followers of the job's ranks; `key` is the job's record key."""
        self.core, self.namespace, self.container, self.channel = (
            core,
            namespace,
            container,
            channel,
        )
        self.key = key
        self.followers: dict[int, RankLog] = {}

    def update(self, pods: list[dict[str, Any]]) -> None:
        """Follow every rank whose container has started and is not followed yet."""
        for rank, pod in ranked_pods(pods).items():
            if rank not in self.followers and container_started(pod):
                follower = RankLog(
                    self.core,
                    self.namespace,
                    pod["metadata"]["name"],
                    self.container,
                    rank,
                    self.channel,
                    self.key,
                )
                self.followers[rank] = follower
                follower.start()

    def finished(self, workers: int | None) -> bool:
        """Whether every followed rank's log was read to its end; with `workers`, also whether
        every rank was followed (a failed job's ranks that never started have no log)."""
        if workers is not None and set(self.followers) != set(range(workers)):
            return False
        return all(follower.done.is_set() for follower in self.followers.values())

    def stop(self) -> None:
        for follower in self.followers.values():
            follower.stopping.set()
        for follower in self.followers.values():
            with contextlib.suppress(RuntimeError):
                follower.join(timeout=5)
