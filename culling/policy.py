"""Which culling policy a server falls under, and when it is due to be culled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jupyterhub_idle_culler import parse_date

from hubflow.hub.settings import CullingSettings
from hubflow.profiles import ProfileCatalog
from hubflow.profiles.server_record import ServerRecord


@dataclass(frozen=True)
class Policy:
    """Seconds of idleness before a server is culled (0: never) and its maximum age (0: none)."""

    idle_timeout: int
    max_age: int

    @property
    def key(self) -> str:
        """A name for the policy, usable in a URL path."""
        return f"idle-{self.idle_timeout}-age-{self.max_age}"

    @property
    def culls(self) -> bool:
        """Whether this policy ever culls a server."""
        return bool(self.idle_timeout or self.max_age)


def hubflow_profile(server: dict[str, Any]) -> dict[str, Any]:
    """The resolved profile hubflow's spawner recorded in a server's state ({} if none)."""
    record = ServerRecord.from_spawner_state(server.get("state"))
    return record.profile if record else {}


def policy_for(
    server: dict[str, Any], catalog: ProfileCatalog, defaults: CullingSettings
) -> Policy:
    """The policy of a server (a hub API server model with its state): its profile's culling
    fields as they are now, else the defaults for a server with or without GPUs."""
    resolved = hubflow_profile(server)
    profile = catalog.get(resolved.get("slug", ""))
    holds_gpus = int(resolved.get("gpu_count") or 0) > 0
    idle = defaults.gpu_idle_timeout if holds_gpus else defaults.idle_timeout
    max_age = defaults.max_age
    if profile is not None:
        if profile.culling.idle_timeout is not None:
            idle = profile.culling.idle_timeout
        if profile.culling.max_age is not None:
            max_age = profile.culling.max_age
    return Policy(idle, max_age)


@dataclass(frozen=True)
class DueCull:
    """When a server will be culled under its policy, and why ("idle" or "age")."""

    at: datetime
    reason: str
    policy: Policy


def due_cull(server: dict[str, Any], policy: Policy) -> DueCull | None:
    """When idle-culler will cull this server if nothing changes (None: never), read the same
    way idle-culler reads it: last activity, else the start time."""
    started = parse_date(server["started"])
    last = parse_date(server["last_activity"]) if server.get("last_activity") else started
    due = []
    if policy.idle_timeout:
        due.append(DueCull(last + timedelta(seconds=policy.idle_timeout), "idle", policy))
    if policy.max_age:
        due.append(DueCull(started + timedelta(seconds=policy.max_age), "age", policy))
    return min(due, key=lambda d: d.at) if due else None
