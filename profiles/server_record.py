"""ServerRecord: what a hubflow spawner records about a server it started, in its JupyterHub
state; the jobs service and the culler read it back through the hub API.

The record is versioned. Version 1 (hubflow 0.1) had no `version` key and fewer fields; it still
loads, the missing fields empty.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .resolved import ResolvedProfile

#: Where a spawner keeps the record in its JupyterHub state.
STATE_KEY = "hubflow"
#: The version a spawner writes now.
RECORD_VERSION = 2


@dataclass(frozen=True)
class ServerRecord:
    """A running server: its resolved profile (`ResolvedProfile.to_dict()`), its workspace
    (a local path, or the mount path in a pod), the GPUs it holds (local mode), its profile's
    environment, and how its processes run."""

    workspace: str
    gpus: list[str]
    environment: dict[str, str]
    profile: dict[str, Any]
    #: KubeSpawner's own state: the pod's namespace and the workspace's claim.
    namespace: str = ""
    pvc_name: str = ""
    #: The claims of volumes made for this user (volume name -> PVC), on Kubernetes.
    claims: dict[str, str] = field(default_factory=dict)
    #: Local mode: how the server's processes run (account, cgroups, jobs' network).
    process: dict[str, Any] = field(default_factory=dict)
    #: The pod's uid, gid and fsGroup ("uid", "gid", "fs_gid"), on Kubernetes.
    run_as: dict[str, int] = field(default_factory=dict)
    version: int = RECORD_VERSION

    @property
    def resolved(self) -> ResolvedProfile | None:
        """The resolved profile, or None where the record holds none."""
        return ResolvedProfile.from_dict(self.profile) if self.profile else None

    @property
    def gpu_count(self) -> int:
        """How many GPUs the server's profile holds."""
        return int(self.profile.get("gpu_count") or 0)

    def to_state(self) -> dict[str, Any]:
        """The record as the spawner's state keeps it (under STATE_KEY), JSON types only."""
        record = asdict(self)
        del record["namespace"], record["pvc_name"]  # KubeSpawner keeps these itself
        return record

    @classmethod
    def from_spawner_state(
        cls, state: Mapping[str, Any] | None, default_workspace: str = ""
    ) -> ServerRecord | None:
        """The record in a spawner's whole state (None when hubflow recorded nothing);
        `default_workspace` stands for a pod's workspace where the record names none."""
        state = state or {}
        record = state.get(STATE_KEY)
        if not record:
            return None
        profile = copy.deepcopy(dict(record.get("profile") or {}))
        return cls(
            workspace=str(record.get("workspace") or default_workspace),
            gpus=[str(g) for g in record.get("gpus") or []],
            environment={str(k): str(v) for k, v in (record.get("environment") or {}).items()},
            profile=profile,
            namespace=str(state.get("namespace") or ""),
            pvc_name=str(state.get("pvc_name") or ""),
            claims=dict(record.get("claims") or {}),
            process=dict(record.get("process") or {}),
            run_as={k: int(v) for k, v in (record.get("run_as") or {}).items()},
            version=int(record.get("version") or 1),
        )
