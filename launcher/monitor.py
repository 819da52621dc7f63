"""Watching a job live: log lines as they are printed ('[rank R] ...'), and a status line
(state, elapsed time, progress or why it waits) refreshed in place. Interrupting cancels."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import requests

from hubflow.launcher.api import Job
from hubflow.launcher.contract import FINISHED_STATES
from hubflow.launcher.progress import format_duration, format_progress

#: How often the status line is refreshed from the jobs API.
STATUS_INTERVAL_S = 0.5


def _elapsed(model: dict[str, Any]) -> float:
    start = datetime.fromisoformat(model["created"])
    end = (
        datetime.fromisoformat(model["finished"])
        if model.get("finished")
        else datetime.now(timezone.utc)
    )
    return (end - start).total_seconds()


def status_line(model: dict[str, Any]) -> str:
    """'job 3f2a… (train) Running · 12.3s · step 10/100 · loss=0.3'."""
    name = f" ({model['name']})" if model.get("name") else ""
    parts = [f"job {model['id']}{name} {model['state']}", format_duration(_elapsed(model))]
    if model["state"] in ("Queued", "Pending") and model.get("reason"):
        parts.append(model["reason"])
    elif model["state"] == "Pending":
        parts.append("starting workers")
    if model["state"] == "Failed" and model.get("failing_rank") is not None:
        parts.append(f"rank {model['failing_rank']} failed")
    progress = format_progress(model.get("progress"))
    if progress:
        parts.append(progress)
    return " · ".join(parts)


class JobMonitor:
    """Follows one job until it ends: `print_line` gets log lines (of every rank, or of `rank`),
    `show_status` status lines."""

    def __init__(
        self,
        job: Job,
        print_line: Callable[[str], None] = print,
        show_status: Callable[[str], None] = print,
        timeout: float | None = None,
        rank: int | None = None,
    ) -> None:
        self.job = job
        self.rank = rank
        self.print_line = print_line
        self.show_status = show_status
        self.timeout = timeout
        self._lines: queue.Queue[str | None] = queue.Queue()

    def _stream_logs(self) -> None:
        """Follow the log stream, resuming from the last offsets if the connection drops
        (e.g. while the jobs service restarts)."""
        offsets: dict[int, int] = {}
        while True:
            try:
                lines = self.job.client.logs(
                    self.job.id, rank=self.rank, offsets=offsets, follow=True
                )
                for line in lines:
                    offsets[line.rank] = line.offset
                    self._lines.put(f"[rank {line.rank}] {line.line}")
                break
            except requests.RequestException:
                time.sleep(1.0)
        self._lines.put(None)

    def _refresh(self) -> dict[str, Any]:
        try:
            model = self.job.refresh()
        except requests.RequestException:
            return self.job.model  # the service may be restarting: keep the last state
        self.show_status(status_line(model))
        return model

    def run(self) -> dict[str, Any]:
        """Watch until the job ended and its logs are drained; return its final model.

        KeyboardInterrupt cancels the job, then propagates; `timeout` cancels and raises
        TimeoutError.
        """
        started = time.monotonic()
        threading.Thread(target=self._stream_logs, daemon=True).start()
        logs_done = False
        model = self._refresh()
        next_refresh = time.monotonic() + STATUS_INTERVAL_S
        try:
            while not (logs_done and model["state"] in FINISHED_STATES):
                try:
                    line = self._lines.get(timeout=0.1)
                    if line is None:
                        logs_done = True
                    else:
                        self.print_line(line)
                except queue.Empty:
                    pass
                if time.monotonic() >= next_refresh or logs_done:
                    model = self._refresh()
                    next_refresh = time.monotonic() + STATUS_INTERVAL_S
                if self.timeout is not None and time.monotonic() - started > self.timeout:
                    self.show_status(status_line(self.job.cancel()))
                    raise TimeoutError(f"job {self.job.id} cancelled after {self.timeout}s")
        except KeyboardInterrupt:
            self.show_status(status_line(self.job.cancel()))
            self.print_line(f"job {self.job.id} cancelled")
            raise
        return model
