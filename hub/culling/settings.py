"""Culling settings from the environment, each checked and named on error."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from hubflow.hub.settings import SettingsError
from hubflow.profiles.quantities import parse_duration


def _duration(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        seconds = parse_duration(int(raw) if raw.isdigit() else raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: must be a duration such as 90, 30m or 2h") from None
    if seconds < minimum:
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum} seconds")
    return seconds


@dataclass(frozen=True)
class CullingSettings:
    """Deployment-wide culling defaults and rhythms, in seconds (0: never / no maximum age)."""

    enabled: bool = True
    idle_timeout: int = 3600
    gpu_idle_timeout: int = 1200
    max_age: int = 86400
    warn_before: int = 600
    every: int = 60
    activity_interval: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> CullingSettings:
        """Read HUBFLOW_CULL* and HUBFLOW_ACTIVITY_INTERVAL; a bad value names the variable."""
        switch = env.get("HUBFLOW_CULLING", "on")
        if switch not in ("on", "off"):
            raise SettingsError(f"HUBFLOW_CULLING={switch!r}: must be on or off")
        d = cls()
        return cls(
            enabled=switch == "on",
            idle_timeout=_duration(env, "HUBFLOW_CULL_IDLE_TIMEOUT", d.idle_timeout),
            gpu_idle_timeout=_duration(env, "HUBFLOW_CULL_GPU_IDLE_TIMEOUT", d.gpu_idle_timeout),
            max_age=_duration(env, "HUBFLOW_CULL_MAX_AGE", d.max_age),
            warn_before=_duration(env, "HUBFLOW_CULL_WARN_BEFORE", d.warn_before),
            every=_duration(env, "HUBFLOW_CULL_EVERY", d.every, minimum=1),
            activity_interval=_duration(
                env, "HUBFLOW_ACTIVITY_INTERVAL", d.activity_interval, minimum=1
            ),
        )
