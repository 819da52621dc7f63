"""Killing a pod's processes for good: its process group and every descendant (own sessions too)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """All processes below `pid`, found through /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def signal_tree(pid: int, sig: signal.Signals, known: set[int] | None = None) -> set[int]:
    """Send `sig` to the group led by `pid`, its descendants and `known` pids; return all of them."""
    targets = {pid, *descendants(pid), *(known or set())}
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    for target in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, sig)
    return targets
