"""The job channel: how a job's payload, results, errors, progress and per-rank logs travel
between the jobs service and the ranks.

The local backend uses files in the job's directory (`DirectoryChannel`); a backend whose ranks
run elsewhere swaps in another channel with the same methods. Ranks find theirs through
`channel_from_env()`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: The environment variable that names the job's directory for its ranks.
JOB_DIR_ENV = "HUBFLOW_JOB_DIR"


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


def channel_from_env(env: dict[str, str] | None = None) -> DirectoryChannel | None:
    """The channel of the job this process is a rank of, or None outside a job."""
    root = (env if env is not None else os.environ).get(JOB_DIR_ENV)
    return DirectoryChannel(root) if root else None
