"""What the spawn page shows of a profile: resources in words and the choices offered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .choices import field_name
from .model import Amount, Profile
from .quantities import format_bytes, format_number

IDE_NAMES = {"jupyterlab": "JupyterLab", "vscode": "VS Code", "rstudio": "RStudio"}
VENDOR_NAMES = {"nvidia": "NVIDIA", "amd": "AMD"}


def _span(amount: Amount, fmt: Callable[[Any], str]) -> str:
    if amount.values:
        texts = [fmt(value) for value in amount.values]
        return texts[0] if len(texts) == 1 else f"{', '.join(texts[:-1])} or {texts[-1]}"
    if amount.minimum is None or amount.maximum is None:
        return fmt(amount.default)
    return f"{fmt(amount.minimum)}–{fmt(amount.maximum)}"


def describe_resources(profile: Profile) -> str:
    """Resources in words, e.g. "2 CPU, 8 GiB, 1× NVIDIA A100"."""
    parts = []
    cpu = profile.cpu
    if cpu.limit:
        parts.append(f"{_span(cpu.limit, format_number)} CPU")
    elif cpu.guarantee is not None:
        parts.append(f"{format_number(cpu.guarantee)} CPU")
    memory = profile.memory
    if memory.limit:
        parts.append(_span(memory.limit, format_bytes))
    elif memory.guarantee is not None:
        parts.append(format_bytes(memory.guarantee))
    gpu = profile.gpu
    if gpu:
        name = f"{VENDOR_NAMES[gpu.vendor]} {gpu.type or 'GPU'}"
        parts.append(f"{_span(gpu.count, str)}× {name}{' (shared)' if gpu.shared else ''}")
    return ", ".join(parts)


def _amount_view(slug: str, name: str, amount: Amount | None, fmt: Callable[[Any], str]) -> Any:
    if amount is None:
        return None
    return {
        "field": field_name(slug, name),
        "fixed": amount.is_fixed,
        "default": amount.default,
        "min": amount.minimum,
        "max": amount.maximum,
        "step": amount.step,
        "values": list(amount.values),
        "allowed": amount.describe(fmt),
    }


def display_view(profile: Profile) -> dict[str, Any]:
    """A JSON-ready view of a profile for the spawn page; pass a profile already filtered for the
    user (ProfileCatalog.profiles_for) so only their choices show. Memory amounts are in bytes;
    the form takes them back as quantities (e.g. "8Gi") or plain numbers of GiB."""
    slug = profile.slug
    return {
        "slug": slug,
        "display_name": profile.display_name,
        "description": profile.description,
        "default": profile.default,
        "resources": describe_resources(profile),
        "ide_field": field_name(slug, "ide"),
        "ides": [
            {"name": ide.name, "display_name": IDE_NAMES[ide.name], "image": ide.image}
            for ide in profile.ides
        ],
        "cpu": _amount_view(slug, "cpu", profile.cpu.limit, format_number),
        "memory": _amount_view(slug, "memory", profile.memory.limit, format_bytes),
        "gpu": _amount_view(slug, "gpu", profile.gpu.count if profile.gpu else None, str),
        "options": [
            {
                "name": option.name,
                "field": field_name(slug, option.name),
                "display_name": option.display_name,
                "description": option.description,
                "choices": [
                    {
                        "slug": choice.slug,
                        "display_name": choice.display_name,
                        "description": choice.description,
                        "default": choice is option.default_choice,
                    }
                    for choice in option.choices
                ],
                "unlisted_choice": option.unlisted
                and {
                    "field": field_name(slug, f"{option.name}--unlisted-choice"),
                    "display_name": option.unlisted.display_name,
                    "display_name_in_choices": option.unlisted.display_name_in_choices,
                    "validation_regex": option.unlisted.validation_regex,
                    "validation_message": option.unlisted.validation_message,
                },
            }
            for option in profile.options
        ],
    }
