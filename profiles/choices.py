"""Server-side resolution of a spawn form into a ResolvedProfile; the form is never trusted."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from . import z2jh
from .access import visible_profiles
from .build import UNLISTED, parse_overrides
from .errors import ChoiceError, Problem
from .merge import merge_by_identity, merge_tolerations, toleration_identity, volume_identity
from .model import (
    GPU_RESOURCES,
    Amount,
    Choice,
    ExtraVolume,
    Ide,
    Number,
    Option,
    Overrides,
    Profile,
    UnlistedChoice,
)
from .quantities import format_bytes, format_number, parse_cpu, parse_decimal, parse_quantity
from .resolved import ResolvedProfile
from .schema import check

Form = Mapping[str, "list[str] | str"]
MAX_TEXT = 256
_PLAIN_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")


class HasProfiles(Protocol):
    """Anything holding profiles, such as a ProfileCatalog."""

    @property
    def profiles(self) -> Sequence[Profile]: ...


def field_name(slug: str, name: str) -> str:
    """The form field of a profile's option: ``profile-option-{slug}--{name}``."""
    return f"profile-option-{slug}--{name}"


def resolve(
    source: HasProfiles | Iterable[Profile],
    form: Form,
    groups: Iterable[str],
    is_admin: bool = False,
) -> ResolvedProfile:
    """Check a spawn form against the profiles the user may use and resolve it.

    Missing fields take defaults; anything not offered to the user raises ChoiceError.
    """
    unknown = [key for key in form if key != "profile" and not key.startswith("profile-option-")]
    if unknown:
        raise ChoiceError(unknown[0], f"unknown field {_quote(unknown[0])}")
    profiles = tuple(source.profiles if hasattr(source, "profiles") else source)
    if not profiles:
        # as KubeSpawner with an empty profile list: its own pod, whatever the form says
        return ResolvedProfile.from_dict(DEFAULT.to_dict())
    visible = visible_profiles(profiles, groups, is_admin)
    if not visible:
        raise ChoiceError("profile", "Profile: no profile is available to you")
    slug = _value(form, "profile", "Profile")
    if slug:
        profile = next((p for p in visible if p.slug == slug), None)
        if profile is None:
            raise ChoiceError("profile", f"Profile: unknown profile {_quote(slug)}")
    else:
        profile = next((p for p in visible if p.default), visible[0])
    return _Resolution(profile, form).result()


#: What a spawn comes to when no profile is defined: the spawner's own settings, no override.
DEFAULT = ResolvedProfile(
    slug="default",
    display_name="Default",
    ide="jupyterlab",
    image=None,
    cpu_guarantee=None,
    cpu_limit=None,
    mem_guarantee=None,
    mem_limit=None,
    gpu_type=None,
    gpu_resource=None,
    gpu_count=0,
    gpu_shared=False,
    environment={},
    workspace=None,
    extra_volumes=[],
    node_selector={},
    tolerations=[],
    kubespawner_override={},
    options={},
    kubespawner_overrides=[{}],
)


def _quote(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:80] + "...")


def _value(form: Form, key: str, label: str) -> str | None:
    """The single value of a form field; None when absent or empty."""
    value = form.get(key)
    if isinstance(value, list | tuple):
        if len(set(value)) > 1:
            raise ChoiceError(key, f"{label}: expected one value, got {len(value)}")
        value = value[0] if value else None
    if value is not None and not isinstance(value, str):
        raise ChoiceError(key, f"{label}: expected text")
    return value or None


def _number(
    text: str, key: str, label: str, parse: Callable[[str], Decimal] = parse_decimal
) -> Decimal:
    """A bounded number from the form (its length checked before it is parsed)."""
    try:
        return parse(text.strip())
    except ValueError:
        raise ChoiceError(key, f"{label}: {_quote(text)} is not a number") from None


def substitute(template: Any, value: str) -> Any:
    """Replace "{value}" in every string (keys included) of a template."""
    if isinstance(template, str):
        return template.replace("{value}", value)
    if isinstance(template, list):
        return [substitute(item, value) for item in template]
    if isinstance(template, Mapping):
        return {substitute(k, value): substitute(v, value) for k, v in template.items()}
    return template


def with_tag(image: str, tag: str) -> str:
    """The image with its tag (or digest) replaced."""
    name = image.split("@", 1)[0]
    if name.rfind(":") > name.rfind("/"):
        name = name[: name.rfind(":")]
    return f"{name}:{tag}"


@dataclass
class _Resolution:
    """The choices made for one profile, applied in order: profile, resources, options."""

    profile: Profile
    form: Form
    image: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Mapping[str, Any]] = field(default_factory=list)
    volumes: list[ExtraVolume] = field(default_factory=list)
    chosen: dict[str, str] = field(default_factory=dict)

    def key(self, name: str) -> str:
        return field_name(self.profile.slug, name)

    def refuse(self, name: str, message: str) -> ChoiceError:
        return ChoiceError(self.key(name), message)

    def result(self) -> ResolvedProfile:
        profile = self.profile
        self._refuse_unknown_fields()
        ide = self._ide()
        if profile.z2jh:
            return self._z2jh_result()
        self.image = ide.image
        self.environment = dict(profile.environment)
        self.node_selector = dict(profile.node_selector)
        self.tolerations = list(profile.tolerations)
        self.volumes = list(profile.extra_volumes)
        cpu_limit = self._pick("cpu", "CPU", profile.cpu.limit, self._cpu)
        mem_limit = self._pick("memory", "Memory", profile.memory.limit, self._memory)
        gpu_count = self._pick(
            "gpu", "GPU count", profile.gpu.count if profile.gpu else None, self._gpus
        )
        cpu_guarantee, mem_guarantee = profile.cpu.guarantee, profile.memory.guarantee
        for option in profile.options:
            overrides = self._option(option)
            self._apply(overrides)
            cpu_guarantee = _first(overrides.cpu_guarantee, cpu_guarantee)
            cpu_limit = _first(overrides.cpu_limit, cpu_limit)
            mem_guarantee = _first(overrides.mem_guarantee, mem_guarantee)
            mem_limit = _first(overrides.mem_limit, mem_limit)
            gpu_count = _first(overrides.gpu_count, gpu_count)
        if cpu_guarantee is not None and cpu_limit is not None and cpu_guarantee > cpu_limit:
            raise self.refuse(
                "cpu", f"CPU: the limit {format_number(cpu_limit)} is below the guarantee"
            )
        if mem_guarantee is not None and mem_limit is not None and mem_guarantee > mem_limit:
            raise self.refuse(
                "memory", f"Memory: the limit {format_bytes(int(mem_limit))} is below the guarantee"
            )
        gpu = profile.gpu
        return ResolvedProfile(
            slug=profile.slug,
            display_name=profile.display_name,
            ide=ide.name,
            image=self.image,
            cpu_guarantee=cpu_guarantee,
            cpu_limit=None if cpu_limit is None else float(cpu_limit),
            mem_guarantee=mem_guarantee,
            mem_limit=None if mem_limit is None else int(mem_limit),
            gpu_type=gpu.type if gpu else None,
            gpu_resource=gpu.resource if gpu else None,
            gpu_count=int(gpu_count or 0),
            gpu_shared=gpu.shared if gpu else False,
            environment=self.environment,
            workspace=asdict(profile.workspace) if profile.workspace else None,
            extra_volumes=[asdict(volume) for volume in self.volumes],
            node_selector=self.node_selector,
            tolerations=[dict(toleration) for toleration in self.tolerations],
            kubespawner_override={},
            options=self.chosen,
        )

    def _z2jh_result(self) -> ResolvedProfile:
        """A z2jh profile: its overrides applied in KubeSpawner's order and by its rules, on top
        of what the file's ``defaults`` add (hubflow's fields are read from the outcome)."""
        profile = self.profile
        own = profile.kubespawner_override
        overrides = [dict(own)]
        overrides += [self._z2jh_option(option) for option in profile.options]
        # what the file's defaults added to the profile's fields, under its override
        base = {
            name: {
                k: v
                for k, v in getattr(profile, name).items()
                if k not in (z2jh.named(own, name) or {})
            }
            for name in ("environment", "node_selector")
        }
        merged = z2jh.apply_all(overrides, base)
        try:
            fields = z2jh.effective_fields(merged)
        except Problem as problem:
            raise ChoiceError("profile", f"Profile: {problem.message}") from None
        cpu, memory = fields.get("cpu", {}), fields.get("memory", {})
        for label, amounts, fmt in (
            ("CPU", cpu, format_number),
            ("Memory", memory, lambda value: format_bytes(int(value))),
        ):
            guarantee, limit = amounts.get("guarantee"), amounts.get("limit")
            if guarantee is not None and limit is not None and float(guarantee) > float(limit):
                raise ChoiceError(
                    "profile",
                    f"{label}: the guarantee {fmt(guarantee)} is above the limit {fmt(limit)} "
                    f"for '{profile.display_name}' with these choices",
                )
        own_tolerations = list(z2jh.named(own, "tolerations") or [])
        added = [t for t in profile.tolerations if t not in own_tolerations]
        chosen = list(merged.get("tolerations") or [])
        ids = {toleration_identity(t) for t in chosen}
        gpu = fields.get("gpu")
        workspace = {**(asdict(profile.workspace) if profile.workspace else {})}
        workspace.update(fields.get("workspace", {}))
        return ResolvedProfile(
            slug=profile.slug,
            display_name=profile.display_name,
            ide=z2jh.ide_for(merged),
            image=fields.get("image"),
            cpu_guarantee=cpu.get("guarantee"),
            cpu_limit=cpu.get("limit"),
            mem_guarantee=int(memory["guarantee"]) if "guarantee" in memory else None,
            mem_limit=int(memory["limit"]) if "limit" in memory else None,
            gpu_type=profile.gpu.type if profile.gpu else None,
            gpu_resource=GPU_RESOURCES[gpu["vendor"]] if gpu else None,
            gpu_count=gpu["count"] if gpu else 0,
            gpu_shared=profile.gpu.shared if profile.gpu else False,
            environment=fields.get("environment", {}),
            workspace=workspace or None,
            extra_volumes=[asdict(volume) for volume in profile.extra_volumes],
            node_selector=fields.get("node_selector", {}),
            tolerations=[
                *(dict(t) for t in added if toleration_identity(t) not in ids),
                *chosen,
            ],
            kubespawner_override=z2jh.apply_all(overrides),
            options=self.chosen,
            kubespawner_overrides=overrides,
        )

    def _z2jh_option(self, option: Option) -> dict[str, Any]:
        """The override that KubeSpawner applies for this option: the free-text value's (it
        wins over a listed choice, as in KubeSpawner), else the chosen or default choice's."""
        key, text_key = self.key(option.name), self.key(f"{option.name}--{UNLISTED}")
        label = option.display_name
        value = _value(self.form, key, label)
        text = _value(self.form, text_key, label) if option.unlisted else None
        if text and option.unlisted:
            self._check_text(option.unlisted, text, text_key, label, re.match)
            self.chosen[option.name] = text
            try:
                filled = z2jh.fill_template(option.unlisted.template, text)
                z2jh.translate_choice(filled, ())
            except Problem as problem:
                raise ChoiceError(text_key, f"{label}: {problem.message}") from None
            except (ValueError, KeyError, IndexError, AttributeError) as error:
                raise ChoiceError(text_key, f"{label}: {error}") from None
            return filled
        if value == UNLISTED:
            raise ChoiceError(text_key, f"{label}: enter a value")
        return dict(self._listed(option, value).overrides.kubespawner_override)

    def _refuse_unknown_fields(self) -> None:
        profile = self.profile
        known = {"ide"} | {o.name for o in profile.options}
        known |= {f"{o.name}--{UNLISTED}" for o in profile.options if o.unlisted}
        known |= {"cpu"} if profile.cpu.limit else set()
        known |= {"memory"} if profile.memory.limit else set()
        known |= {"gpu"} if profile.gpu else set()
        prefix = self.key("")
        for key in self.form:
            if key.startswith(prefix) and key[len(prefix) :] not in known:
                raise ChoiceError(key, f"unknown field {_quote(key)}")

    def _ide(self) -> Ide:
        ides = self.profile.ides
        name = _value(self.form, self.key("ide"), "IDE")
        if name is None:
            return ides[0]
        ide = next((ide for ide in ides if ide.name == name), None)
        if ide is None:
            offered = ", ".join(ide.name for ide in ides)
            raise self.refuse(
                "ide",
                f"IDE: {_quote(name)} is not offered for '{self.profile.display_name}' "
                f"(offered: {offered})",
            )
        return ide

    def _pick(
        self, name: str, label: str, amount: Amount | None, parse: Callable[[str, str, str], Number]
    ) -> Number | None:
        if amount is None:
            return None
        text = _value(self.form, self.key(name), label)
        if text is None:
            return amount.default
        value = parse(text, self.key(name), label)
        if not amount.allows(value):
            fmt = format_bytes if name == "memory" else format_number
            raise self.refuse(
                name,
                f"{label}: {fmt(value)} is not allowed for '{self.profile.display_name}' "
                f"(allowed: {amount.describe(fmt)})",
            )
        return value

    @staticmethod
    def _cpu(text: str, key: str, label: str) -> float:
        return float(_number(text, key, label, parse_cpu))

    @staticmethod
    def _gpus(text: str, key: str, label: str) -> int:
        number = _number(text, key, label)
        if number != number.to_integral_value():
            raise ChoiceError(key, f"{label}: {_quote(text)} is not a whole number")
        return int(number)

    @staticmethod
    def _memory(text: str, key: str, label: str) -> int:
        text = text.strip()
        try:
            return parse_quantity(text + "Gi" if _PLAIN_NUMBER.fullmatch(text) else text)
        except ValueError:
            raise ChoiceError(
                key, f"{label}: {_quote(text)} is not a quantity such as 8Gi (or a number of GiB)"
            ) from None

    def _option(self, option: Option) -> Overrides:
        key, text_key = self.key(option.name), self.key(f"{option.name}--{UNLISTED}")
        label = option.display_name
        value = _value(self.form, key, label)
        text = _value(self.form, text_key, label) if option.unlisted else None
        if value == UNLISTED or (value is None and text):
            if option.unlisted is None:
                raise ChoiceError(key, self._not_a_choice(option, value or ""))
            self.chosen[option.name] = text or ""
            return self._unlisted(option, text or "", text_key)
        return self._listed(option, value).overrides

    def _listed(self, option: Option, value: str | None) -> Choice:
        """The listed choice `value` (its default when None), recorded as chosen."""
        choice = option.default_choice if value is None else None
        if value is not None:
            choice = next((c for c in option.choices if c.slug == value), None)
            if choice is None:
                raise ChoiceError(self.key(option.name), self._not_a_choice(option, value))
        if choice is None:
            key = self.key(f"{option.name}--{UNLISTED}")
            raise ChoiceError(key, f"{option.display_name}: enter a value")
        self.chosen[option.name] = choice.slug
        return choice

    def _not_a_choice(self, option: Option, value: str) -> str:
        offered = [c.slug for c in option.choices] + ([UNLISTED] if option.unlisted else [])
        return (
            f"{option.display_name}: {_quote(value)} is not a choice for "
            f"'{self.profile.display_name}' (choices: {', '.join(offered)})"
        )

    def _unlisted(self, option: Option, text: str, key: str) -> Overrides:
        unlisted = option.unlisted
        assert unlisted is not None
        label = option.display_name
        self._check_text(unlisted, text, key, label, re.fullmatch)
        template = substitute(unlisted.template, text)
        try:
            check(template, "overrides")
            return parse_overrides(template, ())
        except Problem as problem:
            raise ChoiceError(key, f"{label}: {problem.message}") from None

    @staticmethod
    def _check_text(
        unlisted: UnlistedChoice,
        text: str,
        key: str,
        label: str,
        match: Callable[[str, str], object],
    ) -> None:
        """A free-text value: one line, bounded, matching the regex (from its start for a z2jh
        list, as KubeSpawner's re.match; whole for hubflow's own format)."""
        if not text:
            raise ChoiceError(key, f"{label}: enter a value")
        if len(text) > MAX_TEXT or not text.isprintable():
            raise ChoiceError(key, f"{label}: enter one line of at most {MAX_TEXT} characters")
        regex = unlisted.validation_regex
        if regex and not match(regex, text):
            rule = unlisted.validation_message or f"must match {regex}"
            raise ChoiceError(key, f"{label}: {rule} (got {_quote(text)})")

    def _apply(self, overrides: Overrides) -> None:
        if overrides.image:
            self.image = overrides.image
        if overrides.image_tag and self.image:
            self.image = with_tag(self.image, overrides.image_tag)
        self.environment.update(overrides.environment)
        self.node_selector.update(overrides.node_selector)
        self.tolerations = merge_tolerations(self.tolerations, overrides.tolerations)
        self.volumes = merge_by_identity(self.volumes, overrides.extra_volumes, volume_identity)


def _first(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value
