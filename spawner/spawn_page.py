"""The spawn page's profile form: the profiles a user may start, with what is free right now."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jinja2
from markupsafe import Markup
from tornado import web

from hubflow.profiles.display import display_view
from hubflow.profiles.errors import ChoiceError, QuotaError
from hubflow.profiles.model import Profile
from hubflow.profiles.quantities import format_bytes, format_number
from hubflow.spawner.gpus import GpuUnavailable, product_matches

#: GPU product -> (free, total) now; None when it is not known at the moment.
GpuAvailability = Mapping[str, tuple[int, int]] | None

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("hubflow.spawner", "templates"),
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


def gpu_type_name(product: str) -> str:
    """A GPU product label in words: "NVIDIA-A100-SXM4-80GB" -> "NVIDIA A100 SXM4 80GB"."""
    return product.replace("-", " ").replace("_", " ")


def gpu_summary(gpu_availability: GpuAvailability) -> list[dict[str, Any]]:
    """Every GPU type there is, with how many are free now, for the page's summary line."""
    if gpu_availability is None:
        return []
    return [
        {"product": product, "name": gpu_type_name(product), "free": free, "total": total}
        for product, (free, total) in sorted(gpu_availability.items())
    ]


def profile_view(
    profile: Profile,
    gpu_availability: GpuAvailability,
    ide_unavailable: Mapping[str, str],
    quota_refusal: Callable[[int], str | None] = lambda gpus: None,
) -> dict[str, Any]:
    """What the template shows of one profile: its display view plus what can be had now.

    `quota_refusal(gpus)` says why the user's quota forbids one more server holding that many
    GPUs (None when it allows it). `gpu_availability` None: not known now (nothing is refused
    for want of GPUs then; the spawner still checks when the server starts).
    """
    view = display_view(profile)
    for ide in view["ides"]:
        ide["reason"] = ide_unavailable.get(ide["name"])
    view["ides"].sort(key=lambda ide: ide["reason"] is not None)
    view["numeric"] = _numeric_fields(view)
    view["gpu_free"] = None
    reasons = []
    lowest_gpus = 0
    if profile.gpu is not None:
        lowest_gpus = int(profile.gpu.count.lowest)
    if profile.gpu is not None and gpu_availability is not None:
        kind = profile.gpu.type or "GPU"
        fitting = [v for product, v in gpu_availability.items() if product_matches(product, kind)]
        free, total = sum(f for f, _ in fitting), sum(t for _, t in fitting)
        view["gpu_free"] = {"type": kind, "free": free, "total": total}
        if total == 0:
            reasons.append(f"no {kind} GPU here")
        elif free < lowest_gpus:
            reasons.append(f"only {free} of {total} {kind} GPUs are free, it needs {lowest_gpus}")
    quota = quota_refusal(lowest_gpus)
    if quota:
        reasons.append(quota)
    if all(ide["reason"] for ide in view["ides"]):
        reasons.append("none of its IDEs is installed here")
    view["unavailable_reason"] = "; ".join(reasons) or None
    return view


def render_profile_form(
    profiles: Sequence[Profile],
    gpu_availability: GpuAvailability,
    ide_unavailable: Mapping[str, str],
    quota_refusal: Callable[[int], str | None] = lambda gpus: None,
) -> str:
    """The HTML JupyterHub puts inside its spawn page's form."""
    views = [profile_view(p, gpu_availability, ide_unavailable, quota_refusal) for p in profiles]
    startable = [v for v in views if not v["unavailable_reason"]]
    # The profile selected at first: the default one if it can start now, else the first that can.
    chosen = next((v for v in startable if v["default"]), startable[0] if startable else None)
    for view in views:
        view["checked"] = view is chosen
    return _templates.get_template("profile_form.html").render(
        profiles=views,
        gpus=gpu_summary(gpu_availability),
        gpus_known=gpu_availability is not None,
    )


def spawn_refusal(error: Exception) -> web.HTTPError:
    """The HTTP error a refused spawn raises: its words for the page, the progress page and the
    REST API, and (as HTML) the form field it is about, so the spawn page shows it there."""
    status = 409 if isinstance(error, QuotaError | GpuUnavailable) else 400
    field = error.field if isinstance(error, ChoiceError) else None
    if isinstance(error, QuotaError | GpuUnavailable):
        field = "profile"
    message = str(error)
    refusal = web.HTTPError(status, message)
    refusal.jupyterhub_message = message  # type: ignore[attr-defined]
    refusal.jupyterhub_html_message = Markup(  # type: ignore[attr-defined]
        '<span class="hubflow-refusal" data-field="{}">{}</span>'
    ).format(field or "", message)
    return refusal
