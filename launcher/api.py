"""The Python API: submit a function (or a prepared payload) as a distributed job and handle it.

job = submit(train, data, workers=4, gpus_per_worker=1)
job.status; for line in job.logs(follow=True): print(line)
job.wait(); job.result(); job.cancel()
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle

from hubflow.launcher.client import JobsClient
from hubflow.launcher.contract import FINISHED_STATES
from hubflow.launcher.payload import Payload, function_payload


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a rank, chained as `__cause__` of the error the
    notebook sees (like concurrent.futures does for process pools)."""

    def __init__(self, rank: int | None, traceback: str) -> None:
        super().__init__(rank, traceback)
        self.rank = rank
        self.traceback = traceback

    def __str__(self) -> str:
        return f'\n"""\n[rank {self.rank}] {self.traceback}"""'


class ResultText(str):
    """Another user's job result as the jobs service shows it to others: each value's repr, as
    text (loading the pickle would run that user's code)."""

    def __repr__(self) -> str:
        return str(self)


class JobFailed(RuntimeError):
    """A job failed and its rank's exception could not be rebuilt here."""

    def __init__(self, message: str, job_id: str, rank: int | None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.rank = rank


class JobCancelled(RuntimeError):
    """The job was cancelled before it finished."""


#: The last line of a traceback shown without hubflow's frames.
FRAMES_HIDDEN = "(hubflow's own frames are hidden; %%distribute --traceback full shows them)"


def shown_as(exc: BaseException, lines: list[str]) -> BaseException:
    """`exc`, which IPython shows as `lines` instead of its traceback through hubflow's own
    frames (its `_render_traceback_`, as ipyparallel's remote errors do); `full_traceback`
    undoes it."""
    exc._render_traceback_ = lambda: [*lines, FRAMES_HIDDEN]  # type: ignore[attr-defined]
    return exc


def full_traceback(exc: BaseException) -> BaseException:
    """`exc` shown by IPython with its whole traceback again, hubflow's frames included."""
    vars(exc).pop("_render_traceback_", None)
    return exc


def job_error(model: dict[str, Any]) -> BaseException:
    """The exception a failed job raised on its failing rank (its original type where it
    unpickles), with the remote traceback as `__cause__` and the rank in a note. IPython shows
    the rank and the rank's own traceback (the user's frames) only (see `shown_as`)."""
    error = model.get("error") or {}
    rank = model.get("failing_rank")
    where = f"rank {rank} of job {model['id']}" if rank is not None else f"job {model['id']}"
    exc: Any = None
    # Only the owner's kernel loads the pickled exception (the service sends it to no one else).
    owner = model.get("user")
    if error.get("exception") and os.environ.get("JUPYTERHUB_USER", owner) == owner:
        try:
            exc = cloudpickle.loads(base64.b64decode(error["exception"]))
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        kind = error.get("type", "error")
        exc = JobFailed(f"{where} failed: {kind}: {error.get('message', '')}", model["id"], rank)
    remote = RemoteTraceback(rank, error.get("traceback", ""))
    exc.__cause__ = remote
    if hasattr(exc, "add_note"):
        exc.add_note(f"raised on {where}")
    return shown_as(
        exc,
        [
            f"{type(exc).__name__} raised on {where}",
            f"RemoteTraceback of rank {rank}:",
            f"[rank {rank}] {remote.traceback}".rstrip("\n"),
        ],
    )


class Job:
    """A handle on a submitted job."""

    def __init__(self, client: JobsClient, model: dict[str, Any]) -> None:
        self.client = client
        self.model = model

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.model.get('name') or ''} {self.model['state']}>"

    @property
    def id(self) -> str:
        return str(self.model["id"])

    def refresh(self) -> dict[str, Any]:
        """Fetch the job's model again."""
        self.model = self.client.get(self.id)
        return self.model

    @property
    def status(self) -> str:
        """The job's state now: Queued, Pending, Running, Succeeded, Failed or Cancelled."""
        return str(self.refresh()["state"])

    @property
    def finished(self) -> bool:
        return self.model["state"] in FINISHED_STATES

    def logs(self, follow: bool = False, rank: int | None = None) -> Iterator[str]:
        """The job's log lines as '[rank R] text'; with `follow`, live until the job ends."""
        for line in self.client.logs(self.id, rank=rank, follow=follow):
            yield f"[rank {line.rank}] {line.line}"

    def wait(self, timeout: float | None = None, interval: float = 0.5) -> dict[str, Any]:
        """Wait until the job has finished; its model. TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.refresh()["state"] not in FINISHED_STATES:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} still {self.model['state']} after {timeout}s")
            time.sleep(interval)
        return self.model

    def outcome(self) -> dict[str, Any]:
        """A finished job's rank-0 outcome {"value", "variables"}; raises the job's error if it
        failed, JobCancelled if it was cancelled."""
        if self.model["state"] == "Failed":
            raise job_error(self.model)
        if self.model["state"] == "Cancelled":
            raise JobCancelled(f"job {self.id} was cancelled")
        result = self.client.result(self.id)
        if isinstance(result, str):  # another user's job: its result as text, never a pickle
            return {"value": ResultText(result), "variables": {}}
        outcome: dict[str, Any] = cloudpickle.loads(result)
        return outcome

    def result(self, timeout: float | None = None) -> Any:
        """Rank 0's return value, once the job succeeded (waits for it)."""
        self.wait(timeout)
        return self.outcome()["value"]

    def cancel(self) -> dict[str, Any]:
        """Cancel the job (its whole process group)."""
        self.model = self.client.cancel(self.id)
        return self.model


def submit_payload(
    payload: Payload,
    *,
    workers: int,
    gpus_per_worker: int = 0,
    framework: str = "pytorch",
    name: str = "",
    client: JobsClient | None = None,
) -> Job:
    """Submit a prepared payload (cell, function or script)."""
    client = client or JobsClient.from_env()
    model = client.submit(
        payload.dumps(),
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        framework=framework,
        name=name,
    )
    return Job(client, model)


def submit(
    fn: Callable[..., Any],
    *args: Any,
    workers: int = 1,
    gpus_per_worker: int = 0,
    framework: str = "pytorch",
    name: str | None = None,
    **kwargs: Any,
) -> Job:
    """Run `fn(*args, **kwargs)` on every rank of a new job; `.result()` is rank 0's return."""
    payload = function_payload(fn, args, kwargs)
    return submit_payload(
        payload,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        framework=framework,
        name=name if name is not None else re.sub(r"[^\w.-]", "", getattr(fn, "__name__", ""))[:63],
    )


def attach(job_id: str, client: JobsClient | None = None) -> Job:
    """A handle on an existing job (after a kernel restart, from another notebook)."""
    client = client or JobsClient.from_env()
    return Job(client, client.get(job_id))
