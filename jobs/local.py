"""The local backend: each job is a supervisor process (see supervisor.py) running torchrun or
plain processes on this machine, in the user's workspace, with files under
`{data_dir}/jobs/{job_id}/`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from hubflow.jobs.backend import JobFiles, Outcome
from hubflow.jobs.hubapi import ServerInfo
from hubflow.jobs.models import JobRequest
from hubflow.jobs.quota import Refusal
from hubflow.jobs.store import Job
from hubflow.jobs.supervisor import EXIT_FILE, LAUNCH_FILE
from hubflow.launcher.contract import JOB_DIR_ENV, MAX_PAYLOAD_BYTES, JobState

#: Variables of the service's own environment a job inherits; nothing else (never its token).
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "TMPDIR")

#: How long cancelled ranks get to exit after SIGTERM before SIGKILL.
CANCEL_GRACE_S = 3.0


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None if it is gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


class LocalBackend(JobFiles):
    """Runs jobs as local process groups and reads their files."""

    max_payload_bytes = MAX_PAYLOAD_BYTES

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def admit(self, request: JobRequest, server: ServerInfo) -> dict[str, Any]:
        """A job's GPUs are some of those its server holds."""
        if request.total_gpus > len(server.gpus):
            raise Refusal(
                422,
                "gpus_per_worker",
                f"{request.workers} worker(s) × {request.gpus_per_worker} GPU(s) need "
                f"{request.total_gpus} GPU(s), the server holds {len(server.gpus)}",
            )
        return {}

    def job_environment(self, job: Job) -> dict[str, str]:
        """The ranks' environment: the user's server environment (profile variables, workspace),
        a few of the service's own variables, and never an API token."""
        env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
        env.update({k: v for k, v in job.environment.items() if not k.startswith("JUPYTERHUB_")})
        env.update(
            HOME=job.workspace,
            USER=job.user,
            HUBFLOW_WORKSPACE=job.workspace,
            HUBFLOW_JOB_ID=job.id,
        )
        env[JOB_DIR_ENV] = str(self.job_dir(job.id))
        return env

    def start(self, job: Job) -> tuple[int, int]:
        """Start the job's supervisor detached (own session); return its (pid, start time)."""
        job_dir = self.job_dir(job.id)
        launch = {
            "framework": job.framework,
            "workers": job.workers,
            "gpus": job.gpus,
            "gpus_per_worker": job.gpus_per_worker,
        }
        (job_dir / LAUNCH_FILE).write_text(json.dumps(launch))
        with open(job_dir / "supervisor.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hubflow.jobs.supervisor", str(job_dir)],
                cwd=job.workspace,
                env=self.job_environment(job),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[job.id] = proc
        start = process_start_time(proc.pid)
        return proc.pid, start if start is not None else -1

    def launch(self, job: Job) -> dict[str, Any]:
        """Start the job's supervisor; record its pid and start time."""
        pid, start_time = self.start(job)
        return {"supervisor_pid": pid, "supervisor_start": start_time}

    def is_alive(self, job: Job) -> bool:
        """Whether the job's supervisor runs: same pid AND same start time (pids get reused)."""
        child = self._children.get(job.id)
        if child is not None and child.poll() is not None:
            del self._children[job.id]
        if job.supervisor_pid is None:
            return False
        return process_start_time(job.supervisor_pid) == job.supervisor_start

    def poll(self, job: Job) -> Outcome:
        """The state of a started job from its supervisor and files."""
        channel = self.channel(job.id)
        exit_file = self.job_dir(job.id) / EXIT_FILE
        alive = self.is_alive(job)  # before looking for exit.json, which is written last
        if exit_file.exists():
            exit_info = json.loads(exit_file.read_text())
            codes = exit_info["exit_codes"]
            error = channel.first_error()
            if exit_info["exit_code"] == 0 and error is None:
                return Outcome(JobState.SUCCEEDED, exit_codes=codes)
            if error is None:
                error = {
                    "message": f"exit codes {codes}",
                    "traceback": self.supervisor_log_tail(job.id),
                }
            rank = error.pop("rank", None)
            return Outcome(JobState.FAILED, exit_codes=codes, failing_rank=rank, error=error)
        if alive:
            return Outcome(JobState.RUNNING if channel.started_ranks() else JobState.PENDING)
        return Outcome(
            JobState.FAILED,
            error={
                "message": "the job's supervisor ended without an exit status",
                "traceback": self.supervisor_log_tail(job.id),
            },
        )

    def supervisor_log_tail(self, job_id: str, limit: int = 4000) -> str:
        """The end of what the supervisor and torchrun printed."""
        try:
            return (self.job_dir(job_id) / "supervisor.log").read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def job_processes(self, job: Job) -> list[int]:
        """Every process of the job: the supervisor and all it started, found by the job
        directory in their environment (torchrun puts each rank in a session of its own)."""
        marker = f"{JOB_DIR_ENV}={self.job_dir(job.id)}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0") and process_start_time(int(entry.name)) is not None:
                pids.append(int(entry.name))
        return pids

    async def cancel(self, job: Job) -> None:
        """Stop all of the job's processes: SIGTERM, then SIGKILL after a grace period."""
        for sig, grace in ((signal.SIGTERM, CANCEL_GRACE_S), (signal.SIGKILL, 1.0)):
            pids = self.job_processes(job)
            if self.is_alive(job):
                pids.append(job.supervisor_pid or 0)
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = asyncio.get_running_loop().time() + grace
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
                self.is_alive(job)  # reaps the supervisor if this service started it
                if not self.job_processes(job):
                    return
