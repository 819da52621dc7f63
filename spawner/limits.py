"""CPU and memory limits of local servers, enforced with cgroups.

Each server gets one cgroup per controller, `hubflow/<account>@<server>.<hub>` under the
controller's mount: cgroup v2 where the unified hierarchy offers the controller, else the
controller's cgroup v1 hierarchy (a machine in hybrid mode mounts memory and cpu there). The
server process joins it before it becomes the user's account, and so does every job the server
submits (jobs/local.py), so a job's ranks count against their server's limits. A stopped
server's cgroups are removed once its jobs are cancelled; where its jobs are kept they stay (a
queued job joins them when it starts) and are reused, with the new profile's limits, when the
server starts again.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

#: cgroup v2: period of the CPU quota, in microseconds (also used for cgroup v1's cfs period).
CPU_PERIOD_US = 100_000
CONTROLLERS = ("memory", "cpu")


def _mounts(mounts_file: str = "/proc/self/mounts") -> tuple[Path | None, dict[str, Path]]:
    """The cgroup v2 mount, and each cgroup v1 controller's mount."""
    unified: Path | None = None
    v1: dict[str, Path] = {}
    for line in Path(mounts_file).read_text().splitlines():
        _, where, kind, options, *_ = line.split()
        if kind == "cgroup2" and unified is None:
            unified = Path(where)
        elif kind == "cgroup":
            for option in options.split(","):
                v1.setdefault(option, Path(where))
    return unified, v1


@dataclass(frozen=True)
class Hierarchy:
    """Where one controller is: its mount and whether it is cgroup v2."""

    controller: str
    root: Path
    v2: bool

    def limit_files(self, cpu_limit: float | None, mem_limit: int | None) -> dict[str, str]:
        """The files that set this controller's limit (nothing when the profile has none)."""
        if self.controller == "memory":
            if self.v2:
                return {"memory.max": str(mem_limit or "max"), "memory.swap.max": "0"}
            unlimited = str(2**63 - 4096)
            return {"memory.limit_in_bytes": str(mem_limit or unlimited)}
        quota = int(cpu_limit * CPU_PERIOD_US) if cpu_limit else None
        if self.v2:
            return {"cpu.max": f"{quota or 'max'} {CPU_PERIOD_US}"}
        return {"cpu.cfs_period_us": str(CPU_PERIOD_US), "cpu.cfs_quota_us": str(quota or -1)}


class Cgroups:
    """The cgroups of local servers on this machine, or why limits cannot be enforced here."""

    def __init__(self, hierarchies: list[Hierarchy], reason: str = "") -> None:
        self.hierarchies = hierarchies
        self.reason = reason

    @classmethod
    def detect(cls, mounts_file: str = "/proc/self/mounts") -> Cgroups:
        """The memory and cpu controllers as this machine mounts them (cgroup v2 first)."""
        if os.geteuid() != 0:
            return cls([], "the hub does not run as root, so it cannot create cgroups")
        unified, v1 = _mounts(mounts_file)
        offered = set()
        if unified is not None and (unified / "cgroup.controllers").exists():
            offered = set((unified / "cgroup.controllers").read_text().split())
        found = []
        for controller in CONTROLLERS:
            if controller in offered and unified is not None:
                found.append(Hierarchy(controller, unified / "hubflow", True))
            elif controller in v1:
                found.append(Hierarchy(controller, v1[controller] / "hubflow", False))
            else:
                return cls([], f"this machine mounts no {controller} cgroup controller")
        hub = cls(found)
        try:
            hub._enable_v2()
        except OSError as e:
            return cls([], f"cgroups cannot be created here ({e.strerror or e})")
        return hub

    def _enable_v2(self) -> None:
        """Create `hubflow/` in each hierarchy; on cgroup v2, hand its children the controllers."""
        for h in self.hierarchies:
            h.root.mkdir(exist_ok=True)
            if h.v2:
                for parent in (h.root.parent, h.root):
                    (parent / "cgroup.subtree_control").write_text(f"+{h.controller}")

    @property
    def enforced(self) -> bool:
        return not self.reason

    def paths(self, group: str) -> list[Path]:
        """The directories of cgroup `group` (one per hierarchy)."""
        return [h.root / group for h in self.hierarchies]

    def create(self, group: str, cpu_limit: float | None, mem_limit: int | None) -> list[str]:
        """Create (or reuse) cgroup `group` with these limits; return the `cgroup.procs` files a
        process writes its pid to in order to join it."""
        procs = []
        for h in self.hierarchies:
            path = h.root / group
            path.mkdir(exist_ok=True)
            for name, value in h.limit_files(cpu_limit, mem_limit).items():
                if (path / name).exists():
                    (path / name).write_text(value)
            procs.append(str(path / "cgroup.procs"))
        return procs

    def pids(self, group: str) -> set[int]:
        """The processes in cgroup `group` now."""
        found: set[int] = set()
        for path in self.paths(group):
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        return found

    def kill(self, group: str) -> None:
        """SIGKILL every process left in cgroup `group`."""
        for pid in self.pids(group):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, group: str) -> None:
        """Remove cgroup `group` if no process is left in it (else it stays, to be reused)."""
        for path in self.paths(group):
            with contextlib.suppress(OSError):
                path.rmdir()
