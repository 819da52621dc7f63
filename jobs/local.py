"""The local backend: each job is a supervisor process (see supervisor.py) running torchrun or
plain processes on this machine, in the user's workspace, with files under
`{data_dir}/jobs/{job_id}/`.

A job runs as its server does (the spawner records how in the server's state): as the user's
system account, inside the server's cgroups, and, unless the operator shares the network, in a
network namespace of its own with loopback only, so no other user's process can reach its
rendezvous. The job's directory belongs to that account (mode 0700); the service reads what the
ranks write there without following links and only from files the account owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from hubflow.jobs.backend import JobFiles, Outcome, StartError
from hubflow.jobs.models import JobRequest
from hubflow.jobs.quota import Refusal
from hubflow.jobs.store import JobRecord
from hubflow.jobs.supervisor import EXIT_FILE, LAUNCH_FILE
from hubflow.launcher.channel import DirectoryChannel
from hubflow.launcher.contract import JOB_DIR_ENV, JOB_GPUS_ENV, MAX_PAYLOAD_BYTES, JobState
from hubflow.launcher.runas import run_as
from hubflow.profiles.server_record import ServerRecord

#: Variables of the service's own environment a job inherits; nothing else (never its token).
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "TMPDIR")

#: How long cancelled ranks get to exit after SIGTERM before SIGKILL.
CANCEL_GRACE_S = 3.0


def _open_beneath(root: Path, relative: str, uid: int) -> IO[bytes]:
    """Open `root/relative` for reading, following no link below `root`, and only a regular
    file that account `uid` owns (what a job's ranks write; the account owns the job's directory
    and could plant links to the service's files there)."""
    parts = relative.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    info = os.fstat(file_fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
        os.close(file_fd)
        raise PermissionError(f"{root / relative} is not a file of the job's account")
    return os.fdopen(file_fd, "rb")


class OwnedChannel(DirectoryChannel):
    """The service's view of a local job's directory: every read goes through `_open_beneath`,
    as the account that owns the directory (which it cannot change) would see it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.uid = root.stat().st_uid if root.exists() else os.geteuid()

    def open(self, relative: str) -> IO[bytes]:
        return _open_beneath(self.root, relative, self.uid)

    def read(self, relative: str) -> bytes | None:
        """The file's bytes, or None if it is absent or not the account's own."""
        try:
            with self.open(relative) as f:
                return f.read()
        except OSError:
            return None

    def names(self, folder: str) -> list[str]:
        """The entries of a folder of the job's directory (none if it is a link)."""
        try:
            fd = os.open(self.root / folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return []
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def read_result(self) -> bytes | None:
        return self.read(self.result_path.name)

    def read_progress(self) -> dict[str, Any] | None:
        try:
            progress: dict[str, Any] = json.loads(self.read("progress.json") or b"")
        except ValueError:
            return None
        return progress

    def started_ranks(self) -> list[int]:
        return sorted(int(n) for n in self.names("started") if n.isdigit())

    def logged_ranks(self) -> list[int]:
        logs = [n.removeprefix("rank-").removesuffix(".log") for n in self.names("logs")]
        return sorted(int(n) for n in logs if n.isdigit())

    def first_error(self) -> dict[str, Any] | None:
        """The error of the rank that failed first (its file was written first), with `rank`."""
        found = []
        for name in self.names("errors"):
            rank = name.removeprefix("rank-").removesuffix(".json")
            if not rank.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError), self.open(f"errors/{name}") as f:
                found.append((os.fstat(f.fileno()).st_mtime_ns, name, int(rank), json.load(f)))
        if not found:
            return None
        *_, first, error = min(found, key=lambda item: item[:2])
        return {**error, "rank": first}


def _give(path: Path, uid: int, gid: int) -> None:
    """Give `path` and the files in it (the service's own so far) to an account."""
    for entry in [path, *path.iterdir()]:
        os.chown(entry, uid, gid, follow_symlinks=False)


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
    holds_gpus = False  # ranks get some of their server's GPUs

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def admit(self, request: JobRequest, server: ServerRecord) -> dict[str, Any]:
        """A job's GPUs are some of those its server holds; it runs as its server does."""
        if request.total_gpus > len(server.gpus):
            raise Refusal(
                422,
                "gpus_per_worker",
                f"{request.workers} worker(s) × {request.gpus_per_worker} GPU(s) need "
                f"{request.total_gpus} GPU(s), the server holds {len(server.gpus)}",
            )
        if os.geteuid() == 0 and not server.process.get("account"):
            raise Refusal(
                409,
                "server_name",
                "the server was started before jobs ran as users' own accounts: restart it",
            )
        return {"process": server.process}

    def channel(self, job_id: str) -> OwnedChannel:
        return OwnedChannel(self.job_dir(job_id))

    def open_log(self, job_id: str, rank: int) -> IO[bytes]:
        """A rank's log, opened as `OwnedChannel` opens files."""
        return self.channel(job_id).open(f"logs/rank-{rank}.log")

    def job_environment(self, job: JobRecord) -> dict[str, str]:
        """The ranks' environment: the user's server environment (profile variables, workspace),
        a few of the service's own variables, and never an API token."""
        env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
        env.update({k: v for k, v in job.environment.items() if not k.startswith("JUPYTERHUB_")})
        account = (job.spec or {}).get("process", {}).get("account") or {}
        env.update(
            HOME=job.workspace,
            USER=account.get("name", job.user),
            HUBFLOW_WORKSPACE=job.workspace,
            HUBFLOW_JOB_ID=job.id,
        )
        env[JOB_DIR_ENV] = str(self.job_dir(job.id))
        env[JOB_GPUS_ENV] = ",".join(job.gpus or [])  # what the hub sees the job hold
        return env

    def start(self, job: JobRecord) -> tuple[int, int]:
        """Start the job's supervisor detached (own session); return its (pid, start time)."""
        job_dir = self.job_dir(job.id)
        launch = {
            "framework": job.framework,
            "workers": job.workers,
            "gpus": job.gpus,
            "gpus_per_worker": job.gpus_per_worker,
        }
        (job_dir / LAUNCH_FILE).write_text(json.dumps(launch))
        process = (job.spec or {}).get("process", {})
        if not all(Path(procs).exists() for procs in process.get("cgroups", [])):
            raise StartError("the server's CPU and memory limits are gone: start it again")
        with open(job_dir / "supervisor.log", "ab") as log:
            account = process.get("account")
            if account:  # the job's files become the account's: it alone (and root) reads them
                _give(job_dir, int(account["uid"]), int(account["gid"]))
            proc = subprocess.Popen(
                [sys.executable, "-m", "hubflow.jobs.supervisor", str(job_dir)],
                cwd=job.workspace,
                env=self.job_environment(job),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=run_as(process),
            )
        self._children[job.id] = proc
        start = process_start_time(proc.pid)
        return proc.pid, start if start is not None else -1

    def launch(self, job: JobRecord) -> dict[str, Any]:
        """Start the job's supervisor; record its pid and start time."""
        pid, start_time = self.start(job)
        return {"supervisor_pid": pid, "supervisor_start": start_time}

    def adopt(self, job: JobRecord) -> dict[str, Any] | None:
        """The job's running supervisor (found by its job directory), or nothing to record if
        it already ended (its exit status is in that directory); None if it never started."""
        for pid in self.job_processes(job):
            with contextlib.suppress(OSError):
                if b"hubflow.jobs.supervisor" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return {"supervisor_pid": pid, "supervisor_start": process_start_time(pid)}
        return {} if (self.job_dir(job.id) / EXIT_FILE).exists() else None

    def is_alive(self, job: JobRecord) -> bool:
        """Whether the job's supervisor runs: same pid AND same start time (pids get reused)."""
        child = self._children.get(job.id)
        if child is not None and child.poll() is not None:
            del self._children[job.id]
        if job.supervisor_pid is None:
            return False
        return process_start_time(job.supervisor_pid) == job.supervisor_start

    def poll(self, job: JobRecord) -> Outcome:
        """The state of a started job from its supervisor and files."""
        channel = self.channel(job.id)
        alive = self.is_alive(job)  # before looking for exit.json, which is written last
        exit_json = channel.read(EXIT_FILE)
        if exit_json is not None:
            exit_info = json.loads(exit_json)
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
        data = self.channel(job_id).read("supervisor.log") or b""
        return data.decode(errors="replace")[-limit:]

    def job_processes(self, job: JobRecord) -> list[int]:
        """Every process of the job: the supervisor and all it started, found by the job
        directory in their environment (torchrun puts each rank in a session of its own), among
        the processes of the job's account only."""
        marker = f"{JOB_DIR_ENV}={self.job_dir(job.id)}".encode()
        account = (job.spec or {}).get("process", {}).get("account")
        uid = int(account["uid"]) if account else os.geteuid()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0") and process_start_time(int(entry.name)) is not None:
                pids.append(int(entry.name))
        return pids

    async def cancel(self, job: JobRecord) -> None:
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
