"""Crash points for the jobs service under test: imported at its start (the test hub puts this
folder on its PYTHONPATH), it wraps the steps of a submit and of a cancel so that the service
kills itself (SIGKILL, as a crash or an OOM kill would) at the step named in the file
$HUBFLOW_CRASH_FILE, once: the file is removed as the service dies.

Nothing of this ships: the product has no test-only branch; only the tests' hub loads it.
"""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path
from typing import Any


def _crash_if(step: str) -> None:
    marker = Path(os.environ["HUBFLOW_CRASH_FILE"])
    try:
        wanted = marker.read_text().strip()
    except OSError:
        return
    if wanted == step:
        marker.unlink()
        os.kill(os.getpid(), signal.SIGKILL)


def _after(cls: Any, name: str, step: str) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        _crash_if(step)
        return result

    setattr(cls, name, wrapper)


def _around_async(cls: Any, name: str, before: str, after: str) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        _crash_if(before)
        result = await original(*args, **kwargs)
        _crash_if(after)
        return result

    setattr(cls, name, wrapper)


def install() -> None:
    """Wrap the steps (the names are the service's own; a renamed one fails here, loudly)."""
    from hubflow.jobs.backend import JobFiles
    from hubflow.jobs.local import LocalBackend
    from hubflow.jobs.scheduler import Scheduler
    from hubflow.jobs.store import JobStore

    _after(JobFiles, "prepare", "submit:after-prepare")
    _after(JobStore, "add", "submit:after-record")
    _after(LocalBackend, "launch", "submit:after-launch")
    _after(Scheduler, "_start", "submit:after-launch-record")
    _around_async(LocalBackend, "cancel", "cancel:after-record", "cancel:after-stop")


if (
    os.environ.get("JUPYTERHUB_SERVICE_NAME") == "hubflow-jobs"
    and "HUBFLOW_CRASH_FILE" in os.environ
):
    install()
