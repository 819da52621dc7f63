"""Zero to JupyterHub / KubeSpawner profileList entries, translated into hubflow's fields.

The whole kubespawner_override is kept for the Kubernetes spawner; the well-known keys are also
read into the profile (resources, GPUs, image, environment, scheduling, workspace).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from .errors import Path, Problem
from .quantities import parse_jupyterhub_bytes
from .schema import check


@cache
def kubespawner_traits() -> frozenset[str]:
    """KubeSpawner's settings (imported on first use: only z2jh profile lists need it)."""
    from kubespawner import KubeSpawner

    return frozenset(KubeSpawner.class_trait_names())


Z2JH_KEYS = ("kubespawner_override", "profile_options")
SHARED_KEYS = ("slug", "display_name", "description", "default", "groups")
_GPU_RESOURCES = {"nvidia.com/gpu": "nvidia", "amd.com/gpu": "amd"}
_IDE_URLS = {"/vscode": "vscode", "/rstudio": "rstudio"}
_KSO = "kubespawner_override"
# (path in hubflow's fields, path in the z2jh entry, whether the rest of the path carries over)
_ALIASES: tuple[tuple[Path, Path, bool], ...] = (
    (("cpu", "limit"), (_KSO, "cpu_limit"), False),
    (("cpu", "guarantee"), (_KSO, "cpu_guarantee"), False),
    (("memory", "limit"), (_KSO, "mem_limit"), False),
    (("memory", "guarantee"), (_KSO, "mem_guarantee"), False),
    (("gpu",), (_KSO, "extra_resource_limits"), False),
    (("volumes", "workspace"), (_KSO, "storage_capacity"), False),
    (("ides",), (_KSO, "image"), False),
    (("tolerations",), (_KSO, "tolerations"), True),
)


def is_z2jh(entry: Mapping[str, Any]) -> bool:
    """Whether a profiles: entry is a z2jh profileList entry."""
    return any(key in entry for key in Z2JH_KEYS)


def original_path(path: Path) -> Path:
    """The path in the z2jh entry of a problem found in its translated fields."""
    path = tuple(path)
    if path[:1] == ("options",):
        if len(path) >= 5 and path[2] == "choices" and path[4] == "set":
            return ("profile_options", *path[1:4], _KSO)
        return ("profile_options", *path[1:])
    for native, original, keep_rest in _ALIASES:
        if path[: len(native)] == native:
            return (*original, *path[len(native) :]) if keep_rest else original
    return path


def check_traits(override: Mapping[str, Any], path: Path) -> None:
    """Refuse keys that are not KubeSpawner settings."""
    for key in override:
        if key not in kubespawner_traits():
            raise Problem((*path, key), f"unknown KubeSpawner setting '{key}'")


def to_native(entry: Mapping[str, Any]) -> dict[str, Any]:
    """hubflow profile fields for a schema-valid z2jh profileList entry."""
    override = entry.get(_KSO, {})
    check_traits(override, (_KSO,))
    fields = _translate(override, (_KSO,))
    native = {key: entry[key] for key in SHARED_KEYS if key in entry}
    ide = _IDE_URLS.get(str(override.get("default_url", "")).rstrip("/"), "jupyterlab")
    native["ides"] = {ide: {"image": fields.pop("image")} if "image" in fields else {}}
    if "gpu" in fields:
        native["gpu"] = fields.pop("gpu")
    if "workspace" in fields:
        native["volumes"] = {"workspace": fields.pop("workspace")}
    native.update(fields, kubespawner_override=dict(override))
    options = entry.get("profile_options", {})
    if options:
        native["options"] = {
            name: _option(option, ("profile_options", name)) for name, option in options.items()
        }
    return native


def translate_choice(override: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The ``set`` fields of a choice's kubespawner_override (values checked, keys too)."""
    check_traits(override, path)
    fields = _translate(override, path)
    fields.pop("workspace", None)
    if "gpu" in fields:
        fields["gpu"] = {"count": fields["gpu"]["count"]}
    return fields


def _option(option: Mapping[str, Any], path: Path) -> dict[str, Any]:
    native = {
        key: option[key] for key in ("display_name", "description", "groups") if key in option
    }
    choices = {}
    for slug, choice in option.get("choices", {}).items():
        override = choice.get(_KSO, {})
        choices[slug] = {
            **{
                key: choice[key]
                for key in ("display_name", "description", "default", "groups")
                if key in choice
            },
            "set": translate_choice(override, (*path, "choices", slug, _KSO)),
            _KSO: dict(override),
        }
    native["choices"] = choices
    if "unlisted_choice" in option:
        unlisted = dict(option["unlisted_choice"])
        check_traits(unlisted.get(_KSO, {}), (*path, "unlisted_choice", _KSO))
        unlisted.setdefault(_KSO, {})
        native["unlisted_choice"] = unlisted
    return native


def _check(value: Any, definition: str, path: Path) -> None:
    try:
        check(value, definition)
    except Problem as problem:
        raise Problem((*path, *problem.path), problem.message) from None


def _number(value: Any, path: Path, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        sign = "≥" if minimum == 0 else ">"
        raise Problem(path, f"must be a number {sign} 0")
    return float(value)


def _translate(override: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The well-known KubeSpawner settings as hubflow fields."""
    fields: dict[str, Any] = {}
    if override.get("image") is not None:
        _check(override["image"], "image", (*path, "image"))
        fields["image"] = override["image"]
    for trait, key in (("cpu_guarantee", "guarantee"), ("cpu_limit", "limit")):
        if override.get(trait) is not None:
            minimum = 0.0 if key == "guarantee" else 1e-9
            fields.setdefault("cpu", {})[key] = _number(override[trait], (*path, trait), minimum)
    for trait, key in (("mem_guarantee", "guarantee"), ("mem_limit", "limit")):
        if override.get(trait) is not None:
            try:
                size = parse_jupyterhub_bytes(override[trait])
            except ValueError as error:
                raise Problem((*path, trait), str(error)) from None
            fields.setdefault("memory", {})[key] = str(size)
    limits = override.get("extra_resource_limits") or {}
    if not isinstance(limits, Mapping):
        raise Problem((*path, "extra_resource_limits"), "must be a mapping")
    gpus = {k: v for k, v in limits.items() if k in _GPU_RESOURCES}
    for resource, count in gpus.items():
        if not str(count).isdigit():
            raise Problem(
                (*path, "extra_resource_limits", resource), "must be a whole number of GPUs"
            )
        if int(count):
            fields["gpu"] = {"vendor": _GPU_RESOURCES[resource], "count": int(count)}
    for trait in ("environment", "node_selector"):
        values = override.get(trait) or {}
        if not isinstance(values, Mapping):
            raise Problem((*path, trait), "must be a mapping")
        scalars = {
            k: str(v)
            for k, v in values.items()
            if isinstance(v, str | int | float) and not isinstance(v, bool)
        }
        if scalars:
            fields[trait] = scalars
    if override.get("tolerations"):
        _check(override["tolerations"], "tolerations", (*path, "tolerations"))
        fields["tolerations"] = list(override["tolerations"])
    workspace = {}
    if override.get("storage_capacity") is not None:
        _check(str(override["storage_capacity"]), "quantity", (*path, "storage_capacity"))
        workspace["size"] = str(override["storage_capacity"])
    if override.get("storage_class"):
        workspace["storage_class"] = str(override["storage_class"])
    if workspace:
        fields["workspace"] = workspace
    return fields
