"""The spawn page's profile form: the profiles a user may start, with what is free right now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from hubflow.profiles.display import display_view
from hubflow.profiles.model import Profile
from hubflow.profiles.quantities import format_bytes, format_number
from hubflow.spawner.gpus import product_matches

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("hubflow.hub", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity the form posts back: 8 GiB -> "8Gi", 2 GB -> "2G"."""
    return format_bytes(size).replace(" ", "").removesuffix("B")


def _memory_field(amount: Mapping[str, Any]) -> dict[str, Any]:
    """Memory: a number of GiB where the range lies on whole GiB, else a list of quantities."""
    bounds = [amount["min"], amount["max"], amount["step"]]
    if not amount["values"] and all(v is not None and v % 2**30 == 0 for v in bounds):
        low, high, step = (format_number(v / 2**30) for v in bounds)
        default = format_number(amount["default"] / 2**30)
        return {
            "field": amount["field"],
            "label": "Memory (GiB)",
            "unit": "GiB",
            "default": default,
            "min": low,
            "max": high,
            "step": step,
            "choices": [],
        }
    sizes = amount["values"] or range(amount["min"], amount["max"] + 1, amount["step"])
    return {
        "field": amount["field"],
        "label": "Memory",
        "unit": "",
        "default": _quantity(amount["default"]),
        "choices": [{"value": _quantity(v), "label": format_bytes(v)} for v in sizes],
    }


def _count_field(amount: Mapping[str, Any], label: str) -> dict[str, Any]:
    """CPUs or GPUs: a list of allowed counts, or a range with a step."""
    show = format_number
    return {
        "field": amount["field"],
        "label": label,
        "unit": "",
        "default": show(amount["default"]),
        "min": show(amount["min"]) if amount["min"] is not None else None,
        "max": show(amount["max"]) if amount["max"] is not None else None,
        "step": show(amount["step"]) if amount["step"] is not None else None,
        "choices": [{"value": show(v), "label": show(v)} for v in amount["values"]],
    }


def _numeric_fields(view: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The amounts of a profile view the user may pick (ranged or listed), for the form."""
    fields = []
    for key, label in (("cpu", "CPUs"), ("memory", "Memory"), ("gpu", "GPUs")):
        amount = view.get(key)
        if amount and not amount["fixed"]:
            fields.append(_memory_field(amount) if key == "memory" else _count_field(amount, label))
    return fields


def profile_view(
    profile: Profile,
    gpu_availability: Mapping[str, tuple[int, int]],
    ide_unavailable: Mapping[str, str],
) -> dict[str, Any]:
    """What the template shows of one profile: its display view plus what this machine has now."""
    view = display_view(profile)
    for ide in view["ides"]:
        ide["reason"] = ide_unavailable.get(ide["name"])
    view["ides"].sort(key=lambda ide: ide["reason"] is not None)
    view["numeric"] = _numeric_fields(view)
    view["gpu_free"] = None
    view["unavailable_reason"] = None
    if profile.gpu is not None:
        kind = profile.gpu.type or "GPU"
        fitting = [v for product, v in gpu_availability.items() if product_matches(product, kind)]
        free, total = sum(f for f, _ in fitting), sum(t for _, t in fitting)
        view["gpu_free"] = {"type": kind, "free": free, "total": total}
        if free < profile.gpu.count.lowest:
            view["unavailable_reason"] = (
                f"no {kind} GPU on this machine"
                if total == 0
                else f"only {free} of {total} {kind} GPUs are free"
            )
    return view


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
