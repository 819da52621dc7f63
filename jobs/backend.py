"""What the scheduler and the API handlers need from a job backend (local processes or Kubeflow
resources), and the job files every backend keeps in the service's data directory: the payload,
each rank's log, and what the ranks sent back (result, errors, progress)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from hubflow.jobs.models import JobRequest
from hubflow.jobs.store import JobRecord
from hubflow.launcher.channel import DirectoryChannel
from hubflow.launcher.contract import JobState
from hubflow.profiles.server_record import ServerRecord

#: How much of a rank's log one read takes, and the longest line the logs API sends by default.
READ_BYTES = 1 << 20
MAX_LOG_LINE = 1 << 16


@dataclass(frozen=True)
class Outcome:
    """What the backend sees of a started job now; `reason` says why it is still Pending."""

    state: JobState
    exit_codes: dict[str, int] | None = None
    failing_rank: int | None = None
    error: dict[str, Any] | None = None
    reason: str = ""


@dataclass(frozen=True)
class LogChunk:
    """Complete lines read from a rank's log: (offset after the line, text), and where to go on."""

    lines: list[tuple[int, str]]
    next_offset: int


class StartError(Exception):
    """A job could not be started; the message says why in the user's words."""


class JobBackend(Protocol):
    """Runs jobs somewhere and reports on them; the scheduler is its only caller for changes."""

    #: The largest payload (cloudpickled bytes) this backend can ship to its ranks.
    max_payload_bytes: int
    #: Whether a job's ranks hold GPUs of their own (pods) rather than share their server's: they
    #: then count against the GPU quotas as servers' do.
    holds_gpus: bool

    def admit(self, request: JobRequest, server: ServerRecord) -> dict[str, Any]:
        """Refuse (quota.Refusal) what this backend cannot run for `server`; else return what to
        record with the job (`JobRecord.spec`) to start it later, even if the server is gone by then."""
        ...

    def prepare(self, job_id: str, payload: bytes) -> None:
        """Keep the payload until the job starts (before it is queued or started)."""
        ...

    def discard(self, job_id: str) -> None:
        """Forget everything kept for a job that was never recorded."""
        ...

    def launch(self, job: JobRecord) -> dict[str, Any]:
        """Start the job; return the fields to record with it."""
        ...

    def adopt(self, job: JobRecord) -> dict[str, Any] | None:
        """After a crash between `launch` and its record: the fields `launch` would have
        returned, if the job was started (then it is followed, not started again); else None."""
        ...

    def poll(self, job: JobRecord) -> Outcome:
        """The state of a started job now."""
        ...

    async def cancel(self, job: JobRecord) -> None:
        """Stop the job and everything it runs."""
        ...

    def read_log(
        self, job_id: str, rank: int, offset: int, final: bool, max_line: int = MAX_LOG_LINE
    ) -> LogChunk:
        """Complete lines of a rank's log from byte `offset` (with `final`, a last partial one);
        a line longer than `max_line` bytes comes in pieces of that size."""
        ...

    def channel(self, job_id: str) -> DirectoryChannel:
        """Where the job's result, errors and progress are read from."""
        ...


class JobFiles:
    """The job's directory `{data_dir}/jobs/{job_id}/`: payload, per-rank logs, result, errors."""

    def __init__(self, data_dir: Path) -> None:
        self.jobs_dir = Path(data_dir) / "jobs"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def channel(self, job_id: str) -> DirectoryChannel:
        return DirectoryChannel(self.job_dir(job_id))

    def prepare(self, job_id: str, payload: bytes) -> None:
        """Create the job's directory with its payload (before it is queued or started)."""
        self.job_dir(job_id).mkdir(mode=0o700, parents=True)  # the service's own until it starts
        self.channel(job_id).write_payload(payload)

    def discard(self, job_id: str) -> None:
        """Remove everything a job left on disk."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def open_log(self, job_id: str, rank: int) -> IO[bytes]:
        """A rank's log, open for reading."""
        return open(self.channel(job_id).rank_log_path(rank), "rb")

    def read_log(
        self, job_id: str, rank: int, offset: int, final: bool, max_line: int = MAX_LOG_LINE
    ) -> LogChunk:
        """Complete lines of a rank's log from `offset`; with `final`, a last unterminated line
        too. A line longer than `max_line` bytes is cut into pieces of that size, so a follow
        never waits on a line that does not end."""
        try:
            with self.open_log(job_id, rank) as f:
                f.seek(max(offset - 1, 0))
                data = f.read(READ_BYTES + (offset > 0))
        except OSError:
            return LogChunk([], offset)
        # inside a line already sent in full pieces: the byte before `offset` ends no line
        inside = offset > 0 and data[:1] not in (b"\n", b"\r")
        data = data[offset > 0 :]
        lines: list[tuple[int, str]] = []
        position = offset
        for raw in data.splitlines(keepends=True):
            # a "\r" at the very end of what was read may be the first half of "\r\n"
            at_end = position - offset + len(raw) == len(data)
            ended = final or raw.endswith(b"\n") or (raw.endswith(b"\r") and not at_end)
            text = raw.rstrip(b"\r\n")
            if inside and ended and not text:  # the end of a line sent in pieces: nothing new
                position += len(raw)
            for start in range(0, len(text) if inside else max(len(text), 1), max_line):
                piece = text[start : start + max_line]
                if len(piece) < max_line and not ended:
                    return LogChunk(lines, position)  # the rest of a line still being written
                last = start + max_line >= len(text)
                position += len(raw) - start if last and ended else len(piece)
                lines.append((position, piece.decode(errors="replace")))
            inside = False
        return LogChunk(lines, position)
