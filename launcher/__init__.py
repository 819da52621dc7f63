"""hubflow launcher: run notebook cells, functions and scripts as distributed jobs.

In a notebook: `%load_ext hubflow.launcher` (hubflow's kernels load it already), then
`%%distribute --workers 2`. In code: `submit(fn, ..., workers=2).result()`. Inside a job:
`report(step=..., loss=...)`.
"""

from __future__ import annotations

from typing import Any

from hubflow.launcher.api import Job, JobCancelled, JobFailed, RemoteTraceback, attach, submit
from hubflow.launcher.progress import report

__all__ = [
    "Job",
    "JobCancelled",
    "JobFailed",
    "RemoteTraceback",
    "attach",
    "load_ipython_extension",
    "report",
    "submit",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register %%distribute, %jobs and %job."""
    from hubflow.launcher.magics import DistributeMagics

    ipython.register_magics(DistributeMagics)
