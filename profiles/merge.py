"""hubflow's merge rules: lists are concatenated without duplicates, mappings merged by key.

KubeSpawner's overrides replace lists, which silently drops default tolerations; here the
tolerations and extra volumes of defaults, profile and chosen options are concatenated, an entry
with the same identity (toleration key and effect; volume name) from the more specific level
replacing the other. environment, node_selector, cpu, memory, gpu, culling, volumes.workspace and
options are merged key by key; everything else is replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_BY_KEY = ("environment", "node_selector", "cpu", "memory", "gpu", "options", "culling")


def merge_by_identity(
    base: Iterable[T], extra: Iterable[T], identity: Callable[[T], Hashable]
) -> list[T]:
    """base then extra, where an extra entry replaces a base entry of the same identity."""
    merged: dict[Hashable, T] = {}
    for item in (*base, *extra):
        merged.pop(identity(item), None)
        merged[identity(item)] = item
    return list(merged.values())


def toleration_identity(toleration: Mapping[str, Any]) -> Hashable:
    """Tolerations with the same key and effect are the same toleration."""
    return (toleration.get("key"), toleration.get("effect"))


def volume_identity(volume: Any) -> Hashable:
    """Volumes with the same name are the same volume (a mapping or an ExtraVolume)."""
    return str(volume["name"] if isinstance(volume, Mapping) else volume.name)


def merge_tolerations(
    base: Iterable[Mapping[str, Any]], extra: Iterable[Mapping[str, Any]]
) -> list[Any]:
    """Concatenate tolerations; the same key and effect from extra wins."""
    return merge_by_identity(base, extra, toleration_identity)


def merge_defaults(defaults: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """A profile's raw fields on top of its file's ``defaults``, by the rules above."""
    merged = {**defaults, **profile}
    for key in _BY_KEY:
        if key in defaults and key in profile:
            merged[key] = {**defaults[key], **profile[key]}
    if "tolerations" in defaults and "tolerations" in profile:
        merged["tolerations"] = merge_tolerations(defaults["tolerations"], profile["tolerations"])
    if "volumes" in defaults and "volumes" in profile:
        base, mine = defaults["volumes"], profile["volumes"]
        volumes = {**base, **mine}
        if "workspace" in base and "workspace" in mine:
            volumes["workspace"] = {**base["workspace"], **mine["workspace"]}
        if "extra" in base and "extra" in mine:
            volumes["extra"] = merge_by_identity(base["extra"], mine["extra"], volume_identity)
        merged["volumes"] = volumes
    return merged
