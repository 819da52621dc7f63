"""Zero to JupyterHub / KubeSpawner profileList entries, read as KubeSpawner 7 reads them.

KubeSpawner reads a few keys at each level (profile, option, choice, unlisted choice) and the
settings inside each kubespawner_override; it ignores every other key, and so does hubflow, which
logs them once per file. ``allowed_groups`` (a convention of large z2jh deployments) means what
hubflow's ``groups`` means. Each setting's value is checked with KubeSpawner's own trait, so a
value KubeSpawner would refuse at spawn is refused at load, with its field named.

When a user picks, the overrides are applied in KubeSpawner's order and by its rules (a mapping
is updated recursively, a None value removing the key; any other value replaces): the profile's,
then each option's chosen (or default) choice's; a free-text value is put into its template with
KubeSpawner's own formatting. hubflow's fields (resources, GPUs, image, IDE, scheduling) are read
from the outcome. The whole outcome is kept for the Kubernetes spawner, which applies the same
overrides with KubeSpawner's own machinery.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import cache
from typing import Any

from .errors import Path, Problem, format_path
from .model import GPU_VENDORS, Profile
from .quantities import parse_jupyterhub_bytes
from .schema import SCHEMA, check

log = logging.getLogger(__name__)

KSO = "kubespawner_override"
Z2JH_KEYS = (KSO, "profile_options")
#: The keys read at each level of a z2jh entry; KubeSpawner (and hubflow) ignore any other.
PROFILE_KEYS = (
    *("slug", "display_name", "description", "default", "groups", "allowed_groups"),
    *Z2JH_KEYS,
)
OPTION_KEYS = (
    "display_name",
    "description",
    "groups",
    "allowed_groups",
    "choices",
    "unlisted_choice",
)
CHOICE_KEYS = ("display_name", "description", "default", "groups", "allowed_groups", KSO)
_UNLISTED_FIELDS = (
    *("enabled", "display_name", "display_name_in_choices"),
    *("validation_regex", "validation_message"),
)
UNLISTED_KEYS = (*_UNLISTED_FIELDS, "groups", "allowed_groups", KSO)
#: hubflow's own profile fields: refused in a z2jh entry of a hubflow file (one format a profile).
HUBFLOW_FIELDS = tuple(
    key for key in SCHEMA["$defs"]["profile"]["properties"] if key not in PROFILE_KEYS
)
#: Settings that would break an invariant of hubflow's (DESIGN.md), refused by name.
REFUSED = {
    "automount_service_account_token": (
        True,
        "hubflow keeps Kubernetes credentials out of users' servers; leave it unset",
    ),
}
_IDE_URLS = {"/vscode": "vscode", "/rstudio": "rstudio"}
_TRAIT_PREFIX = re.compile(r"^The '[^']*' trait of an? \w+ instance ")
# (path in hubflow's fields, path in the z2jh entry, whether the rest of the path carries over)
_ALIASES: tuple[tuple[Path, Path, bool], ...] = (
    (("cpu", "limit"), (KSO, "cpu_limit"), False),
    (("cpu", "guarantee"), (KSO, "cpu_guarantee"), False),
    (("memory", "limit"), (KSO, "mem_limit"), False),
    (("memory", "guarantee"), (KSO, "mem_guarantee"), False),
    (("gpu",), (KSO, "extra_resource_limits"), False),
    (("volumes", "workspace"), (KSO, "storage_capacity"), False),
    (("ides",), (KSO, "image"), False),
    (("tolerations",), (KSO, "tolerations"), True),
)


@cache
def _kubespawner() -> Any:
    """KubeSpawner (imported on first use: only z2jh profile lists need it)."""
    from kubespawner import KubeSpawner

    return KubeSpawner


@cache
def _checker() -> Any:
    """A KubeSpawner with no state, whose traits check values (nothing is started)."""
    spawner = _kubespawner()
    return spawner.__new__(spawner)


@cache
def deprecated_names() -> Mapping[str, str]:
    """KubeSpawner's deprecated setting names (image_spec, singleuser_*) and their new names."""
    return {old: new for old, (new, _) in _kubespawner()._deprecated_traits.items()}


@cache
def _traits() -> Mapping[str, Any]:
    return dict(_kubespawner().class_traits(config=True))


@cache
def mapping_settings() -> frozenset[str]:
    """The settings whose value is a mapping, which an override updates instead of replacing."""
    from traitlets import Dict

    return frozenset(name for name, trait in _traits().items() if isinstance(trait, Dict))


def setting_name(key: str) -> str | None:
    """The KubeSpawner setting a kubespawner_override key sets, or None (KubeSpawner ignores it)."""
    key = deprecated_names().get(key, key)
    return key if key in _traits() else None


def named(override: Mapping[str, Any], name: str) -> Any:
    """The value an override gives setting `name` (under its name or a deprecated one)."""
    value = None
    for key, item in override.items():
        if setting_name(str(key)) == name:
            value = item
    return value


def is_z2jh(entry: Mapping[str, Any]) -> bool:
    """Whether a profiles: entry is a z2jh profileList entry."""
    return any(key in entry for key in Z2JH_KEYS)


def original_path(path: Path) -> Path:
    """The path in the z2jh entry of a problem found in its translated fields."""
    path = tuple(path)
    if path[:1] == ("options",):
        if len(path) >= 5 and path[2] == "choices" and path[4] == "set":
            return ("profile_options", *path[1:4], KSO)
        return ("profile_options", *path[1:])
    for native, original, keep_rest in _ALIASES:
        if path[: len(native)] == native:
            return (*original, *path[len(native) :]) if keep_rest else original
    return path


def ignored_keys(entry: Mapping[str, Any]) -> list[str]:
    """Where the keys of a z2jh entry that KubeSpawner ignores are, as field paths."""
    found: list[Path] = [(key,) for key in entry if key not in PROFILE_KEYS]
    found += _ignored_settings(entry.get(KSO), (KSO,))
    options = entry.get("profile_options")
    for name, option in options.items() if isinstance(options, Mapping) else ():
        if not isinstance(option, Mapping):
            continue
        where: Path = ("profile_options", name)
        found += [(*where, key) for key in option if key not in OPTION_KEYS]
        choices = option.get("choices")
        for slug, choice in choices.items() if isinstance(choices, Mapping) else ():
            if isinstance(choice, Mapping):
                at: Path = (*where, "choices", slug)
                found += [(*at, key) for key in choice if key not in CHOICE_KEYS]
                found += _ignored_settings(choice.get(KSO), (*at, KSO))
        unlisted = option.get("unlisted_choice")
        if isinstance(unlisted, Mapping):
            here = (*where, "unlisted_choice")
            found += [(*here, key) for key in unlisted if key not in UNLISTED_KEYS]
            found += _ignored_settings(unlisted.get(KSO), (*here, KSO))
    return [format_path(path) for path in found]


def _ignored_settings(override: Any, path: Path) -> list[Path]:
    if not isinstance(override, Mapping):
        return []
    return [(*path, key) for key in override if setting_name(str(key)) is None]


def review_file(path: str, entries: Sequence[Any], profiles: list[Profile]) -> list[Profile]:
    """The profiles of one file as KubeSpawner reads its list: of several z2jh profiles marked
    default the first one is; what KubeSpawner ignores is logged, once for the file."""
    ignored = []
    for entry, profile in zip(entries, profiles, strict=True):
        if profile.z2jh:
            ignored += [f"profile '{profile.slug}' > {key}" for key in ignored_keys(entry)]
    default = next((p for p in profiles if p.default), None)
    later = [p for p in profiles if p.default and p is not default and p.z2jh]
    if ignored:
        log.info("%s: ignored, as KubeSpawner ignores them: %s", path, "; ".join(ignored))
    if later and default is not None:
        log.info(
            "%s: profile '%s' is the default (the first marked default); also marked: %s",
            path,
            default.slug,
            ", ".join(f"'{p.slug}'" for p in later),
        )
    return [replace(p, default=False) if any(p is q for q in later) else p for p in profiles]


def settings(override: Any, path: Path) -> dict[str, Any]:
    """A kubespawner_override's settings, each value checked by KubeSpawner's own trait; keys
    that are not KubeSpawner settings are left out (KubeSpawner ignores them too)."""
    if not isinstance(override, Mapping):
        raise Problem(path, "must be a mapping")
    kept = {}
    for key, value in override.items():
        name = setting_name(str(key))
        if name is None:
            continue
        refused = REFUSED.get(name)
        if refused and value == refused[0]:
            raise Problem((*path, key), refused[1])
        check_setting(name, value, (*path, key))
        kept[key] = value
    return kept


def check_setting(name: str, value: Any, path: Path) -> Any:
    """The value as KubeSpawner's trait `name` takes it; a Problem naming the field if refused."""
    from traitlets import TraitError

    trait = _traits()[name]
    try:
        return trait._validate(_checker(), value)
    except TraitError as error:
        if type(trait).__name__ == "ByteSpecification":
            message = "must be bytes or a number with suffix K, M, G or T (1G = 1024³ bytes)"
        else:
            message = _TRAIT_PREFIX.sub("", str(error)).replace("expected", "must be", 1)
        raise Problem(path, message.rstrip(".")) from None
    except (TypeError, ValueError) as error:
        raise Problem(path, str(error)) from None


def apply_overrides(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (setting -> value) after one override, by KubeSpawner's _apply_overrides rules:
    a mapping updates a mapping setting recursively (None removes a key), anything else replaces.
    Deprecated names are read as their new names."""
    from kubespawner.utils import recursive_update

    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        name = setting_name(str(key))
        if name is None:
            continue
        current = merged.get(name, {} if name in mapping_settings() else None)
        if isinstance(value, dict) and isinstance(current, dict):
            recursive_update(current, copy.deepcopy(value))
            merged[name] = current
        else:
            merged[name] = copy.deepcopy(value)
    return merged


def fill_template(template: Mapping[str, Any], value: str) -> dict[str, Any]:
    """An unlisted choice's kubespawner_override with the value put in, as KubeSpawner does
    (str.format_map with {value}; other fields are left as they are)."""
    from kubespawner.utils import recursive_format

    return {key: recursive_format(item, value=value) for key, item in template.items()}


def check_template(template: Mapping[str, Any], path: Path) -> None:
    """Refuse a free-text template that KubeSpawner could not fill with any value."""
    try:
        fill_template(template, "x")
    except (ValueError, KeyError, IndexError, AttributeError) as error:
        raise Problem(path, f"cannot put the value in: {error}") from None


def to_native(entry: Mapping[str, Any]) -> dict[str, Any]:
    """hubflow profile fields for a schema-valid z2jh profileList entry."""
    override = settings(entry.get(KSO, {}), (KSO,))
    fields = _translate(override, (KSO,))
    native: dict[str, Any] = {
        key: entry[key]
        for key in ("slug", "display_name", "description", "default")
        if key in entry
    }
    groups = _groups(entry)
    if groups:
        native["groups"] = groups
    ide = ide_for(override)
    native["ides"] = {ide: {"image": fields.pop("image")} if "image" in fields else {}}
    if "gpu" in fields:
        native["gpu"] = fields.pop("gpu")
    if "workspace" in fields:
        native["volumes"] = {"workspace": fields.pop("workspace")}
    native.update(fields, kubespawner_override=override, z2jh=True)
    options = entry.get("profile_options") or {}
    if options:
        native["options"] = {
            name: _option(name, option, ("profile_options", name))
            for name, option in options.items()
        }
    return native


def ide_for(override: Mapping[str, Any]) -> str:
    """The IDE a kubespawner_override's default_url opens (JupyterLab unless VS Code or RStudio)."""
    return _IDE_URLS.get(str(override.get("default_url") or "").rstrip("/"), "jupyterlab")


def translate_choice(override: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The ``set`` fields of a choice's kubespawner_override (its settings' values checked)."""
    fields = _translate(settings(override, path), path)
    fields.pop("workspace", None)
    return fields


def effective_fields(override: Mapping[str, Any]) -> dict[str, Any]:
    """hubflow's fields read from the settings that the overrides came to (see apply_overrides)."""
    return _translate(override, ())


def _groups(raw: Mapping[str, Any]) -> list[str]:
    """hubflow's ``groups`` and z2jh's ``allowed_groups``: either admits."""
    return list(dict.fromkeys([*raw.get("groups", []), *raw.get("allowed_groups", [])]))


def _option(name: str, option: Mapping[str, Any], path: Path) -> dict[str, Any]:
    native: dict[str, Any] = {
        "display_name": option.get("display_name") or name,
        **{key: option[key] for key in ("description",) if key in option},
    }
    if _groups(option):
        native["groups"] = _groups(option)
    choices = {}
    for slug, choice in (option.get("choices") or {}).items():
        where = (*path, "choices", slug, KSO)
        override = settings(choice.get(KSO, {}), where)
        choices[slug] = {
            "display_name": choice.get("display_name") or slug,
            **{key: choice[key] for key in ("description", "default") if key in choice},
            **({"groups": _groups(choice)} if _groups(choice) else {}),
            "set": translate_choice(override, where),
            KSO: override,
        }
    native["choices"] = choices
    unlisted = option.get("unlisted_choice")
    if unlisted and unlisted.get("enabled"):
        where = (*path, "unlisted_choice", KSO)
        template = {
            k: v for k, v in (unlisted.get(KSO) or {}).items() if setting_name(str(k)) is not None
        }
        check_template(template, where)
        native["unlisted_choice"] = {
            **{key: unlisted[key] for key in _UNLISTED_FIELDS if key in unlisted},
            **({"groups": _groups(unlisted)} if _groups(unlisted) else {}),
            KSO: template,
        }
    return native


def _check(value: Any, definition: str, path: Path) -> None:
    try:
        check(value, definition)
    except Problem as problem:
        raise Problem((*path, *problem.path), problem.message) from None


def _number(value: Any, path: Path, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise Problem(path, f"must be a number ≥ {minimum:g}")
    return float(value)


def _gpus(override: Mapping[str, Any], path: Path) -> dict[str, Any] | None:
    """The GPUs that extra_resource_limits (else extra_resource_guarantees) ask for."""
    for trait in ("extra_resource_limits", "extra_resource_guarantees"):
        values = override.get(trait) or {}
        if not isinstance(values, Mapping):
            raise Problem((*path, trait), "must be a mapping")
        for resource, count in values.items():
            if resource not in GPU_VENDORS or count is None:
                continue
            if not str(count).isdigit():
                raise Problem((*path, trait, resource), "must be a whole number of GPUs")
            return {"vendor": GPU_VENDORS[resource], "count": int(count)} if int(count) else None
    return None


def _translate(override: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The well-known KubeSpawner settings as hubflow fields."""
    override = {deprecated_names().get(str(k), str(k)): v for k, v in override.items()}
    fields: dict[str, Any] = {}
    if override.get("image") is not None:
        _check(override["image"], "image", (*path, "image"))
        fields["image"] = override["image"]
    # 0 is no amount at all, as in KubeSpawner's pod (it sets only amounts that are not 0)
    for trait, key in (("cpu_guarantee", "guarantee"), ("cpu_limit", "limit")):
        if override.get(trait) is not None:
            amount = _number(override[trait], (*path, trait), 0.0)
            if amount:
                fields.setdefault("cpu", {})[key] = amount
    for trait, key in (("mem_guarantee", "guarantee"), ("mem_limit", "limit")):
        if override.get(trait) is not None:
            size = parse_jupyterhub_bytes(check_setting(trait, override[trait], (*path, trait)))
            if size:
                fields.setdefault("memory", {})[key] = str(size)
    gpu = _gpus(override, path)
    if gpu:
        fields["gpu"] = gpu
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


def apply_all(
    overrides: Iterable[Mapping[str, Any]], base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The settings that a sequence of overrides comes to from ``base`` (see apply_overrides)."""
    merged: dict[str, Any] = dict(base or {})
    for override in overrides:
        merged = apply_overrides(merged, override)
    return merged
