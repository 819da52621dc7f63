"""ResolvedProfile: what a user's spawn choice comes to, ready for a spawner."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class ResolvedProfile:
    """A profile with every choice made; JSON-serialisable through to_dict()/from_dict()."""

    slug: str
    display_name: str
    ide: str
    image: str | None
    cpu_guarantee: float | None
    cpu_limit: float | None
    mem_guarantee: int | None
    mem_limit: int | None
    gpu_type: str | None
    gpu_resource: str | None
    gpu_count: int
    gpu_shared: bool
    environment: dict[str, str]
    workspace: dict[str, Any] | None
    extra_volumes: list[dict[str, Any]]
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    kubespawner_override: dict[str, Any]
    options: dict[str, str]
    #: A z2jh profile's kubespawner_overrides in KubeSpawner's order (the profile's, then each
    #: option's chosen one), for the Kubernetes spawner to apply one after the other.
    kubespawner_overrides: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy as plain JSON types."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResolvedProfile:
        """Rebuild from to_dict()'s output; unknown or missing fields raise ValueError."""
        names = [f.name for f in fields(cls)]
        unknown = [key for key in data if key not in names]
        required = [f.name for f in fields(cls) if f.default_factory is MISSING]
        missing = [name for name in required if name not in data]
        if unknown:
            raise ValueError(f"unknown field '{unknown[0]}' in a resolved profile")
        if missing:
            raise ValueError(f"missing required field '{missing[0]}' in a resolved profile")
        return cls(**copy.deepcopy(dict(data)))
