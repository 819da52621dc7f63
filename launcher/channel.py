"""The job channel: how a job's payload, results, errors, progress and per-rank logs travel
between the jobs service and the ranks.

The local backend uses files in the job's directory (`DirectoryChannel`). Ranks that run in
pods (the Kubeflow backend) read the payload from a mounted file and send everything back as
framed records in their own output (`StreamChannel`), which the jobs service reads from the pod
logs and files into a `DirectoryChannel` of its own (`split_record`, `file_record`). Each record
carries an HMAC under a key made for the job (in its payload Secret, with the payload), so a
line the rank's code prints, or a dataset it echoes, cannot pose as its result. Ranks find
their channel through `channel_from_env()`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hubflow.launcher.contract import JOB_DIR_ENV, JOB_PAYLOAD_ENV, JOB_RECORD_KEY_ENV

#: What starts a framed record in a rank's output (the ASCII record separator, then a tag).
RECORD_MARKER = b"\x1ehubflow-record "
#: The kinds of records a rank sends.
RECORD_KINDS = ("started", "result", "summary", "error", "progress")


class RankChannel(Protocol):
    """The rank's side of a job channel."""

    def attach_output(self, rank: int) -> None: ...
    def mark_started(self, rank: int) -> None: ...
    def read_payload(self) -> bytes: ...
    def write_result(self, data: bytes) -> None: ...
    def write_summary(self, text: str) -> None: ...
    def write_error(self, rank: int, error: dict[str, Any]) -> None: ...
    def write_progress(self, progress: dict[str, Any]) -> None: ...


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class DirectoryChannel:
    """A job channel made of files in one directory (the job's directory)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # -- payload: written by the service, read by every rank ------------------------------------
    @property
    def payload_path(self) -> Path:
        return self.root / "payload.pkl"

    def write_payload(self, data: bytes) -> None:
        """Store the cloudpickled payload (opaque to the service)."""
        _write_atomically(self.payload_path, data)

    def read_payload(self) -> bytes:
        return self.payload_path.read_bytes()

    # -- logs -----------------------------------------------------------------------------------
    def attach_output(self, rank: int) -> None:
        """Send this process's stdout and stderr, unbuffered and in order, to the rank's log."""
        path = self.rank_log_path(rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115

    def rank_log_path(self, rank: int) -> Path:
        """Where a rank's stdout and stderr go, in the order they were written."""
        return self.root / "logs" / f"rank-{rank}.log"

    def logged_ranks(self) -> list[int]:
        """The ranks that have a log file so far."""
        logs = self.root / "logs"
        if not logs.is_dir():
            return []
        return sorted(int(p.stem.split("-", 1)[1]) for p in logs.glob("rank-*.log"))

    # -- start markers --------------------------------------------------------------------------
    def mark_started(self, rank: int) -> None:
        """Record that a rank's bootstrap is running."""
        _write_atomically(self.root / "started" / str(rank), b"")

    def started_ranks(self) -> list[int]:
        started = self.root / "started"
        return sorted(int(p.name) for p in started.iterdir()) if started.is_dir() else []

    # -- results: rank 0's return value and pulled variables ------------------------------------
    @property
    def result_path(self) -> Path:
        return self.root / "result.pkl"

    def write_result(self, data: bytes) -> None:
        _write_atomically(self.result_path, data)

    def read_result(self) -> bytes | None:
        return self.result_path.read_bytes() if self.result_path.exists() else None

    # -- the result as text: what anyone but the job's owner is shown (never the pickle) --------
    def write_summary(self, text: str) -> None:
        _write_atomically(self.root / "result.txt", text.encode())

    def read_summary(self) -> str | None:
        path = self.root / "result.txt"
        return path.read_text(errors="replace") if path.exists() else None

    # -- errors: one file per failing rank ------------------------------------------------------
    def write_error(self, rank: int, error: dict[str, Any]) -> None:
        """Record a rank's exception: {type, message, traceback, exception (base64 pickle)}."""
        _write_atomically(self.root / "errors" / f"rank-{rank}.json", json.dumps(error).encode())

    def first_error(self) -> dict[str, Any] | None:
        """The error of the rank that failed first (its file was written first), with `rank`."""
        errors = self.root / "errors"
        files = list(errors.glob("rank-*.json")) if errors.is_dir() else []
        if not files:
            return None
        first = min(files, key=lambda p: (p.stat().st_mtime_ns, p.name))
        error: dict[str, Any] = json.loads(first.read_text())
        error["rank"] = int(first.stem.split("-", 1)[1])
        return error

    # -- progress: the latest report() of rank 0 ------------------------------------------------
    def write_progress(self, progress: dict[str, Any]) -> None:
        _write_atomically(self.root / "progress.json", json.dumps(progress).encode())

    def read_progress(self) -> dict[str, Any] | None:
        path = self.root / "progress.json"
        try:
            progress: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return progress


@dataclass(frozen=True)
class Record:
    """One framed record from a rank's output."""

    kind: str
    rank: int
    data: bytes


def _mac(key: bytes, kind: str, rank: int, data: bytes) -> str:
    return hmac.new(key, f"{kind} {rank} ".encode() + data, hashlib.sha256).hexdigest()


def encode_record(kind: str, rank: int, data: bytes, key: bytes) -> bytes:
    """A record as one line of output, authenticated with the job's record `key`."""
    mac = _mac(key, kind, rank, data)
    return (
        RECORD_MARKER + f"{kind} {rank} ".encode() + base64.b64encode(data) + f" {mac}\n".encode()
    )


def split_record(line: bytes, key: bytes) -> tuple[bytes, Record | None]:
    """A line of a rank's output as (text before any record, the record or None).

    A record the rank printed after an unterminated line of its own shares that line; a line
    that only looks like a record (unknown kind, bad base64, a MAC that is not the job's) is
    text.
    """
    text, marker, rest = line.partition(RECORD_MARKER)
    if not marker:
        return line, None
    try:
        kind, rank, encoded, mac = rest.rstrip(b"\r\n").decode("ascii").split(" ")
        if kind not in RECORD_KINDS or not rank.isdigit():
            raise ValueError(kind)
        data = base64.b64decode(encoded, validate=True)
        if not hmac.compare_digest(mac, _mac(key, kind, int(rank), data)):
            raise ValueError("not the job's record")
        return text, Record(kind, int(rank), data)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return line, None


def file_record(channel: DirectoryChannel, record: Record) -> None:
    """Keep what a record carries in a directory channel (the jobs service's copy)."""
    if record.kind == "started":
        channel.mark_started(record.rank)
    elif record.kind == "result":
        channel.write_result(record.data)
    elif record.kind == "summary":
        channel.write_summary(record.data.decode(errors="replace"))
    elif record.kind == "error":
        channel.write_error(record.rank, json.loads(record.data))
    else:
        channel.write_progress(json.loads(record.data))


class StreamChannel:
    """A rank in a pod: the payload from a mounted file, everything else as framed records in
    the rank's own output (its pod log), authenticated with the job's record key, which the jobs
    service reads back."""

    def __init__(self, payload_path: Path | str, key: bytes) -> None:
        self.payload_path = Path(payload_path)
        self.key = key

    def attach_output(self, rank: int) -> None:
        """The pod log already is the rank's log: only make output line-buffered."""
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(line_buffering=True)

    def _send(self, kind: str, rank: int, data: bytes) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        line = encode_record(kind, rank, data, self.key)
        view = memoryview(line)
        while view:
            view = view[os.write(1, view) :]

    def read_payload(self) -> bytes:
        return self.payload_path.read_bytes()

    def mark_started(self, rank: int) -> None:
        self._send("started", rank, b"")

    def write_result(self, data: bytes) -> None:
        self._send("result", 0, data)

    def write_summary(self, text: str) -> None:
        self._send("summary", 0, text.encode())

    def write_error(self, rank: int, error: dict[str, Any]) -> None:
        self._send("error", rank, json.dumps(error).encode())

    def write_progress(self, progress: dict[str, Any]) -> None:
        self._send("progress", int(os.environ.get("RANK", "0")), json.dumps(progress).encode())


#: The channel of the cell a warm rank in a pod runs now (set by launcher/warm_worker.py).
_cell_channel: RankChannel | None = None


def use_channel(channel: RankChannel | None) -> None:
    """Make `channel` this process's channel (None: the environment's again)."""
    global _cell_channel
    _cell_channel = channel


def channel_from_env(env: dict[str, str] | None = None) -> RankChannel | None:
    """The channel of the job (or warm cell) this process is a rank of, or None outside one."""
    if env is None and _cell_channel is not None:
        return _cell_channel
    environ = env if env is not None else os.environ
    if environ.get(JOB_DIR_ENV):
        return DirectoryChannel(environ[JOB_DIR_ENV])
    if environ.get(JOB_PAYLOAD_ENV):
        key = (
            Path(environ[JOB_RECORD_KEY_ENV]).read_bytes()
            if environ.get(JOB_RECORD_KEY_ENV)
            else b""
        )
        if not key:
            raise RuntimeError(f"{JOB_RECORD_KEY_ENV} names no record key: results cannot be sent")
        return StreamChannel(environ[JOB_PAYLOAD_ENV], key)
    return None
