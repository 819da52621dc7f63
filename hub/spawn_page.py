"""The spawn page's profile form: the profiles a user may start, with what is free right now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from hubflow.profiles.model import Amount, Profile
from hubflow.profiles.quantities import format_bytes, format_number
from hubflow.spawner.gpus import product_matches
from hubflow.spawner.ides import IDES

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("hubflow.hub", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass
class NumericField:
    """A resource amount the user picks: a list of values or a range with a step."""

    name: str
    label: str
    default: Any
    min: Any = None
    max: Any = None
    step: Any = None
    unit: str = ""
    choices: list[Any] = field(default_factory=list)


def _numeric(
    name: str, label: str, amount: Amount, scale: float = 1, unit: str = ""
) -> NumericField:
    def show(value: Any) -> str:
        return format_number(value / scale)

    if amount.values:
        return NumericField(
            name, label, show(amount.default), choices=[show(v) for v in amount.values]
        )
    return NumericField(
        name,
        label,
        show(amount.default),
        show(amount.minimum),
        show(amount.maximum),
        show(amount.step),
        unit,
    )


def describe_resources(profile: Profile) -> str:
    """A profile's resources in words: "2 CPU · 8 GiB memory · 1 × NVIDIA A100"."""
    parts = []
    if profile.cpu.limit is not None:
        parts.append(f"{profile.cpu.limit.describe()} CPU")
    if profile.memory.limit is not None:
        parts.append(f"{profile.memory.limit.describe(format_bytes)} memory")
    if profile.gpu is not None:
        parts.append(f"{profile.gpu.count.describe()} × {profile.gpu.type or 'GPU'}")
    return " · ".join(parts) or "shared resources"


def profile_view(
    profile: Profile,
    gpu_availability: Mapping[str, tuple[int, int]],
    ide_unavailable: Mapping[str, str],
) -> dict[str, Any]:
    """What the template shows of one profile."""
    numeric = []
    if profile.cpu.limit is not None and not profile.cpu.limit.is_fixed:
        numeric.append(_numeric("cpu", "CPUs", profile.cpu.limit))
    if profile.memory.limit is not None and not profile.memory.limit.is_fixed:
        numeric.append(_numeric("memory", "Memory (GiB)", profile.memory.limit, 2**30, "GiB"))
    gpu = None
    reason = None
    if profile.gpu is not None:
        if not profile.gpu.count.is_fixed:
            numeric.append(_numeric("gpu", "GPUs", profile.gpu.count))
        fitting = [
            v
            for product, v in gpu_availability.items()
            if product_matches(product, profile.gpu.type)
        ]
        free, total = sum(f for f, _ in fitting), sum(t for _, t in fitting)
        gpu = {"type": profile.gpu.type or "GPU", "free": free, "total": total}
        if free < profile.gpu.count.lowest:
            reason = (
                f"no {gpu['type']} GPU on this machine"
                if total == 0
                else f"only {free} of {total} {gpu['type']} GPUs are free"
            )
    ides = [
        {
            "name": ide.name,
            "display_name": IDES[ide.name].display_name,
            "reason": ide_unavailable.get(ide.name),
        }
        for ide in profile.ides
    ]
    ides.sort(key=lambda ide: ide["reason"] is not None)
    options = [
        {
            "name": option.name,
            "display_name": option.display_name,
            "description": option.description,
            "choices": option.choices,
            "unlisted": option.unlisted
            and {
                "display_name": option.unlisted.display_name_in_choices
                or option.unlisted.display_name,
                "regex": option.unlisted.validation_regex,
                "message": option.unlisted.validation_message or "",
            },
        }
        for option in profile.options
    ]
    return {
        "slug": profile.slug,
        "display_name": profile.display_name,
        "description": profile.description,
        "default": profile.default,
        "resources": describe_resources(profile),
        "gpu": gpu,
        "unavailable_reason": reason,
        "ides": ides,
        "numeric": numeric,
        "options": options,
    }


def render_profile_form(
    profiles: Sequence[Profile],
    gpu_availability: Mapping[str, tuple[int, int]],
    ide_unavailable: Mapping[str, str],
) -> str:
    """The HTML JupyterHub puts inside its spawn page's form."""
    views = [profile_view(p, gpu_availability, ide_unavailable) for p in profiles]
    if views and not any(v["default"] for v in views):
        views[0]["default"] = True
    return _templates.get_template("profile_form.html").render(profiles=views)
