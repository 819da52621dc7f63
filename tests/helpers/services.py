"""The processes of a test hub's managed services, found by their environment."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.helpers.hubclient import HubProcess


def service_pids(hub: HubProcess, name: str) -> list[int]:
    """The hub's managed service `name` (hubflow-jobs, hubflow-culler), by its environment."""
    marks = (
        f"JUPYTERHUB_SERVICE_NAME={name}".encode(),
        f"HUBFLOW_DATA_DIR={hub.data_dir}".encode(),
    )
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and all(
                m in (entry / "environ").read_bytes().split(b"\0") for m in marks
            ):
                pids.append(int(entry.name))
    return pids
