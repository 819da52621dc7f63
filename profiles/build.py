"""Build model objects from validated raw profile fields, with the checks a schema cannot do."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from slugify import slugify

from .errors import Path, Problem
from .model import (
    Amount,
    Choice,
    Cpu,
    Culling,
    ExtraVolume,
    Gpu,
    Ide,
    Memory,
    Number,
    Option,
    Overrides,
    Profile,
    UnlistedChoice,
    Workspace,
)
from .quantities import format_bytes, format_number, is_multiple, parse_duration, parse_quantity

SLUG = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
RESERVED_OPTIONS = ("ide", "cpu", "memory", "gpu")
UNLISTED = "unlisted-choice"


def profile_slug(raw: Mapping[str, Any]) -> str:
    """The slug, or one derived from display_name as KubeSpawner does (python-slugify)."""
    if "slug" in raw:
        return str(raw["slug"])
    slug = slugify(str(raw["display_name"]))
    # a z2jh list takes any slug KubeSpawner derives (a long display name makes a long one)
    if not SLUG.fullmatch(slug) or (len(slug) > 63 and not raw.get("z2jh")):
        raise Problem(("display_name",), "cannot derive a slug from it; set 'slug'")
    return slug


def build_profile(raw: Mapping[str, Any], source: str) -> Profile:
    """A Profile from validated raw fields (defaults already merged in)."""
    if not raw.get("ides"):
        raise Problem((), "missing required field 'ides'")
    z2jh = bool(raw.get("z2jh"))
    # a z2jh choice may change a limit or a guarantee: those are checked when one is picked
    checked = not (z2jh and raw.get("options"))
    cpu = _cpu(raw.get("cpu", {}), checked)
    memory = _memory(raw.get("memory", {}), checked)
    volumes = raw.get("volumes", {})
    workspace = Workspace(**volumes["workspace"]) if "workspace" in volumes else None
    profile = Profile(
        slug=profile_slug(raw),
        display_name=raw["display_name"],
        description=raw.get("description", ""),
        default=raw.get("default", False),
        ides=tuple(Ide(name, ide.get("image")) for name, ide in raw["ides"].items()),
        cpu=cpu,
        memory=memory,
        gpu=_gpu(raw["gpu"]) if "gpu" in raw else None,
        environment=dict(raw.get("environment", {})),
        workspace=workspace,
        extra_volumes=_volumes(volumes.get("extra", []), ("volumes", "extra")),
        node_selector=dict(raw.get("node_selector", {})),
        tolerations=_tolerations(raw.get("tolerations", []), ("tolerations",)),
        groups=tuple(raw.get("groups", [])),
        kubespawner_override=dict(raw.get("kubespawner_override", {})),
        culling=_culling(raw.get("culling", {})),
        source=source,
        z2jh=z2jh,
    )
    options = tuple(
        _option(name, option, profile, ("options", name))
        for name, option in raw.get("options", {}).items()
    )
    return replace(profile, options=options)


def _amount(
    raw: Any, path: Path, parse: Callable[[Any], Number], fmt: Callable[[Any], str]
) -> Amount:
    if isinstance(raw, list):
        values = tuple(parse(value) for value in raw)
        return Amount(default=values[0], values=values)
    if not isinstance(raw, Mapping):
        return Amount(default=parse(raw))
    low, high, step = parse(raw["min"]), parse(raw["max"]), parse(raw.get("step", 1))
    default = parse(raw.get("default", raw["min"]))
    if low > high:
        raise Problem((*path, "max"), f"must not be below min ({fmt(low)})")
    for key, value in (("min", low), ("max", high), ("default", default)):
        if not is_multiple(value, step):
            raise Problem((*path, key), f"{fmt(value)} is not a multiple of the step {fmt(step)}")
    if not low <= default <= high:
        raise Problem((*path, "default"), f"must be between min ({fmt(low)}) and max ({fmt(high)})")
    return Amount(default=default, minimum=low, maximum=high, step=step)


def _check_guarantee(
    guarantee: Number | None, limit: Number | None, path: Path, fmt: Callable[[Any], str]
) -> None:
    if guarantee is not None and limit is not None and guarantee > limit:
        raise Problem(path, f"{fmt(guarantee)} is above the limit {fmt(limit)}")


def _cpu(raw: Mapping[str, Any], checked: bool = True) -> Cpu:
    limit = (
        _amount(raw["limit"], ("cpu", "limit"), float, format_number) if "limit" in raw else None
    )
    guarantee = float(raw["guarantee"]) if "guarantee" in raw else None
    lowest = limit.lowest if limit and checked else None
    _check_guarantee(guarantee, lowest, ("cpu", "guarantee"), format_number)
    return Cpu(guarantee, limit)


def _memory(raw: Mapping[str, Any], checked: bool = True) -> Memory:
    path = ("memory", "limit")
    limit = _amount(raw["limit"], path, parse_quantity, format_bytes) if "limit" in raw else None
    guarantee = parse_quantity(raw["guarantee"]) if "guarantee" in raw else None
    lowest = limit.lowest if limit and checked else None
    _check_guarantee(guarantee, lowest, ("memory", "guarantee"), format_bytes)
    return Memory(guarantee, limit)


def _gpu(raw: Mapping[str, Any]) -> Gpu:
    count = _amount(raw.get("count", 1), ("gpu", "count"), int, str)
    return Gpu(count, raw.get("type"), raw.get("vendor", "nvidia"), raw.get("shared", False))


def _culling(raw: Mapping[str, Any]) -> Culling:
    values = {
        key: parse_duration(raw[key])
        for key in ("idle_timeout", "max_age", "pool_idle_timeout")
        if key in raw
    }
    return Culling(**values)


def _tolerations(raw: Sequence[Mapping[str, Any]], path: Path) -> tuple[Mapping[str, Any], ...]:
    for i, toleration in enumerate(raw):
        operator = toleration.get("operator", "Equal")
        if operator == "Exists" and "value" in toleration:
            raise Problem((*path, i, "value"), "must not be set with operator Exists")
        if operator == "Equal" and "key" not in toleration:
            raise Problem((*path, i), "missing required field 'key' (or use operator Exists)")
    return tuple(dict(toleration) for toleration in raw)


#: An extra volume's source: exactly one of these.
VOLUME_SOURCES = ("claim", "host_path", "size")


def _volumes(raw: Sequence[Mapping[str, Any]], path: Path) -> tuple[ExtraVolume, ...]:
    for i, volume in enumerate(raw):
        if sum(key in volume for key in VOLUME_SOURCES) != 1:
            raise Problem(
                (*path, i),
                "set exactly one of 'claim' (an existing PVC), 'host_path' (a node directory) "
                "or 'size' (a volume made for each user)",
            )
        if "storage_class" in volume and "size" not in volume:
            raise Problem((*path, i, "storage_class"), "only a volume with a 'size' has one")
    return tuple(ExtraVolume(**volume) for volume in raw)


def parse_overrides(
    raw: Mapping[str, Any], path: Path, kubespawner_override: Mapping[str, Any] | None = None
) -> Overrides:
    """Overrides from a validated ``set`` mapping (and a z2jh kubespawner_override)."""
    cpu, memory = raw.get("cpu", {}), raw.get("memory", {})
    return Overrides(
        image=raw.get("image"),
        image_tag=raw.get("image_tag"),
        environment=dict(raw.get("environment", {})),
        node_selector=dict(raw.get("node_selector", {})),
        tolerations=_tolerations(raw.get("tolerations", []), (*path, "tolerations")),
        extra_volumes=_volumes(
            raw.get("volumes", {}).get("extra", []), (*path, "volumes", "extra")
        ),
        cpu_guarantee=float(cpu["guarantee"]) if "guarantee" in cpu else None,
        cpu_limit=float(cpu["limit"]) if "limit" in cpu else None,
        mem_guarantee=parse_quantity(memory["guarantee"]) if "guarantee" in memory else None,
        mem_limit=parse_quantity(memory["limit"]) if "limit" in memory else None,
        gpu_count=raw.get("gpu", {}).get("count"),
        kubespawner_override=dict(kubespawner_override or {}),
    )


def check_resources(overrides: Overrides, profile: Profile, path: Path) -> None:
    """A choice's guarantees must stay within the limits it leaves in place (and vice versa)."""
    limit = profile.cpu.limit.lowest if profile.cpu.limit else None
    _check_guarantee(
        overrides.cpu_guarantee if overrides.cpu_guarantee is not None else profile.cpu.guarantee,
        overrides.cpu_limit if overrides.cpu_limit is not None else limit,
        (*path, "cpu"),
        format_number,
    )
    limit = profile.memory.limit.lowest if profile.memory.limit else None
    _check_guarantee(
        overrides.mem_guarantee
        if overrides.mem_guarantee is not None
        else profile.memory.guarantee,
        overrides.mem_limit if overrides.mem_limit is not None else limit,
        (*path, "memory"),
        format_bytes,
    )


def _option(name: str, raw: Mapping[str, Any], profile: Profile, path: Path) -> Option:
    """An option; a z2jh one as KubeSpawner reads it: any name, the first default choice wins,
    resources checked when a choice is picked (another option's choice may change them)."""
    if name in RESERVED_OPTIONS and not profile.z2jh:
        raise Problem(path, f"option name '{name}' is reserved ({', '.join(RESERVED_OPTIONS)})")
    choices = []
    default = None
    for slug, choice in raw.get("choices", {}).items():
        where = (*path, "choices", slug)
        if slug == UNLISTED:
            raise Problem(where, f"'{UNLISTED}' is reserved for the free-text choice")
        if choice.get("default"):
            if default and not profile.z2jh:
                raise Problem(
                    (*where, "default"), f"only one choice may be the default, '{default}' is"
                )
            default = default or slug
        overrides = parse_overrides(
            choice.get("set", {}), (*where, "set"), choice.get("kubespawner_override")
        )
        if not profile.z2jh:
            check_resources(overrides, profile, (*where, "set"))
        choices.append(
            Choice(
                slug=slug,
                display_name=choice["display_name"],
                description=choice.get("description", ""),
                default=choice.get("default", False),
                groups=tuple(choice.get("groups", [])),
                overrides=overrides,
            )
        )
    unlisted = _unlisted(raw.get("unlisted_choice", {}), (*path, "unlisted_choice"))
    if not choices and not unlisted:
        raise Problem(path, "needs at least one choice or an enabled unlisted_choice")
    return Option(
        name=name,
        display_name=raw["display_name"],
        description=raw.get("description", ""),
        groups=tuple(raw.get("groups", [])),
        choices=tuple(choices),
        unlisted=unlisted,
    )


def _unlisted(raw: Mapping[str, Any], path: Path) -> UnlistedChoice | None:
    if not raw.get("enabled"):
        return None
    regex = raw.get("validation_regex")
    if regex is not None:
        try:
            re.compile(regex)
        except re.error as error:
            raise Problem(
                (*path, "validation_regex"), f"not a valid regular expression: {error}"
            ) from None
    z2jh = "kubespawner_override" in raw
    return UnlistedChoice(
        display_name=raw.get("display_name", ""),
        display_name_in_choices=raw.get("display_name_in_choices", "Other..."),
        validation_regex=regex,
        validation_message=raw.get("validation_message"),
        template=dict(raw.get("kubespawner_override" if z2jh else "set", {})),
        z2jh=z2jh,
        groups=tuple(raw.get("groups", [])),
    )
