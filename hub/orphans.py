"""Services a crashed hub left running, found and stopped when the next hub starts.

JupyterHub stops its managed services when it stops, but a `kill -9` (or an OOM kill) of the hub
leaves them running, the jobs service holding its port, so the new hub's jobs service could not
start. The next hub's configuration stops them first: hubflow's services (by their command and
JUPYTERHUB_SERVICE_NAME) that serve the same data directory and whose hub is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from hubflow.hub.services import CULLER_SERVICE, JOBS_SERVICE

#: Each service's command module and name.
SERVICES = {"hubflow.jobs": JOBS_SERVICE, "hubflow.culling": CULLER_SERVICE}
#: How long an orphan gets to stop after SIGTERM before SIGKILL.
GRACE_S = 5.0


def _read(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


def _alive(pid: int) -> bool:
    try:
        return _read(pid, "stat").rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _parent_is_a_hub(pid: int) -> bool:
    ppid = int(_read(pid, "stat").rsplit(b")", 1)[1].split()[1])
    try:
        return b"jupyterhub" in _read(ppid, "cmdline")
    except OSError:
        return False


def orphaned_services(data_dir: Path) -> Iterator[tuple[int, str]]:
    """(pid, service name) of each hubflow service of `data_dir` whose hub is gone."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        with contextlib.suppress(OSError, ValueError, IndexError):
            argv = _read(pid, "cmdline").split(b"\0")
            module = argv[2].decode() if len(argv) > 2 and argv[1] == b"-m" else ""
            if module not in SERVICES:
                continue
            environ = dict(
                item.decode(errors="replace").partition("=")[::2]
                for item in _read(pid, "environ").split(b"\0")
                if item
            )
            if environ.get("JUPYTERHUB_SERVICE_NAME") != SERVICES[module]:
                continue
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
            served = (cwd / (environ.get("HUBFLOW_DATA_DIR") or "data")).resolve()
            if served == data_dir.resolve() and not _parent_is_a_hub(pid):
                yield pid, SERVICES[module]


def stop_orphaned_services(data_dir: Path, log: logging.Logger) -> list[int]:
    """Stop (SIGTERM, then SIGKILL) the services an earlier hub of `data_dir` left; their pids."""
    found = list(orphaned_services(data_dir))
    for pid, name in found:
        log.warning("Stopping %s (pid %d), left running by a hub that ended without it", name, pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for pid, _ in found:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [pid for pid, _ in found]
