"""The hub's copy of its servers' pods, without what it never reads: KubeSpawner's pod reflector
keeps whole pods, and each server pod's environment holds its JupyterHub API token and the
profile's variables. This reflector keeps each pod without its containers' environment."""

from __future__ import annotations

from typing import Any

from kubespawner.spawner import PodReflector
from traitlets import validate

Obj = dict[str, Any]


def without_env(pod: Obj) -> Obj:
    """The pod with no container (or init container) environment values."""
    spec = dict(pod.get("spec") or {})
    for key in ("containers", "initContainers"):
        if key in spec:
            spec[key] = [{k: v for k, v in c.items() if k != "env"} for c in spec[key]]
    return {**pod, "spec": spec}


class EnvlessPods(dict[str, Obj]):
    """A mapping of pods that drops each pod's environment as it is stored."""

    def __init__(self, items: dict[str, Obj] | None = None) -> None:
        super().__init__()
        for key, pod in (items or {}).items():
            self[key] = pod

    def __setitem__(self, key: str, pod: Obj) -> None:
        super().__setitem__(key, without_env(pod))


class EnvlessPodReflector(PodReflector):
    """KubeSpawner's pod reflector, keeping pods without their containers' environment."""

    @validate("resources")
    def _envless(self, proposal: Any) -> EnvlessPods:
        value = proposal["value"]
        return value if isinstance(value, EnvlessPods) else EnvlessPods(dict(value))
