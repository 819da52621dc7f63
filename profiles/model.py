"""The profile model: what a validated profile file describes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .quantities import format_number, is_multiple

Number = int | float
GPU_RESOURCES = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
#: The GPU vendor of each extended resource (the inverse of GPU_RESOURCES).
GPU_VENDORS = {resource: vendor for vendor, resource in GPU_RESOURCES.items()}


@dataclass(frozen=True)
class Amount:
    """A resource amount the user may pick: fixed, a range {min, max, step}, or a list."""

    default: Number
    minimum: Number | None = None
    maximum: Number | None = None
    step: Number | None = None
    values: tuple[Number, ...] = ()

    @property
    def is_fixed(self) -> bool:
        """Whether there is nothing to pick."""
        return self.minimum is None and len(self.values) <= 1

    @property
    def lowest(self) -> Number:
        """The smallest value allowed."""
        if self.values:
            return min(self.values)
        return self.default if self.minimum is None else self.minimum

    def allows(self, value: Number) -> bool:
        """Whether value may be picked."""
        if self.values:
            return value in self.values
        if self.minimum is None or self.maximum is None or self.step is None:
            return value == self.default
        return self.minimum <= value <= self.maximum and is_multiple(value, self.step)

    def describe(self, fmt: Callable[[Any], str] = format_number) -> str:
        """The allowed values in words: "2", "1, 2, 4", "1 to 8 in steps of 1"."""
        if self.values:
            return ", ".join(fmt(value) for value in self.values)
        if self.minimum is None or self.maximum is None:
            return fmt(self.default)
        return f"{fmt(self.minimum)} to {fmt(self.maximum)} in steps of {fmt(self.step)}"


@dataclass(frozen=True)
class Ide:
    """An IDE offered by a profile."""

    name: str
    image: str | None = None


@dataclass(frozen=True)
class Cpu:
    """CPU cores: guarantee and limit."""

    guarantee: float | None = None
    limit: Amount | None = None


@dataclass(frozen=True)
class Memory:
    """Memory in bytes: guarantee and limit."""

    guarantee: int | None = None
    limit: Amount | None = None


@dataclass(frozen=True)
class Gpu:
    """GPUs attached to a server."""

    count: Amount
    type: str | None = None
    vendor: str = "nvidia"
    shared: bool = False

    @property
    def resource(self) -> str:
        """The Kubernetes extended resource, e.g. nvidia.com/gpu."""
        return GPU_RESOURCES[self.vendor]


@dataclass(frozen=True)
class Culling:
    """When a server of the profile is stopped, in seconds; None takes the deployment's default,
    0 means never (for idleness) or no maximum age."""

    idle_timeout: int | None = None
    max_age: int | None = None
    #: How long a warm pool of the profile's servers may stay idle before it is released.
    pool_idle_timeout: int | None = None


@dataclass(frozen=True)
class Workspace:
    """The user's persistent workspace."""

    size: str | None = None
    storage_class: str | None = None
    mount_path: str = "/home/jovyan"


@dataclass(frozen=True)
class ExtraVolume:
    """An extra volume: an existing PVC (claim), a host directory (host_path), or a PVC made for
    each user (size, storage_class) and kept like the workspace."""

    name: str
    mount_path: str
    read_only: bool = False
    claim: str | None = None
    host_path: str | None = None
    size: str | None = None
    storage_class: str | None = None


@dataclass(frozen=True)
class Overrides:
    """Profile fields a choice changes (``set``, or a translated kubespawner_override)."""

    image: str | None = None
    image_tag: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    extra_volumes: tuple[ExtraVolume, ...] = ()
    cpu_guarantee: float | None = None
    cpu_limit: float | None = None
    mem_guarantee: int | None = None
    mem_limit: int | None = None
    gpu_count: int | None = None
    kubespawner_override: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    """One listed choice of an option."""

    slug: str
    display_name: str
    description: str = ""
    default: bool = False
    groups: tuple[str, ...] = ()
    overrides: Overrides = field(default_factory=Overrides)


@dataclass(frozen=True)
class UnlistedChoice:
    """A free-text choice; ``template`` is the raw ``set`` (or kubespawner_override when
    ``z2jh``) in which "{value}" is replaced by the text entered."""

    display_name: str = ""
    display_name_in_choices: str = "Other..."
    validation_regex: str | None = None
    validation_message: str | None = None
    template: Mapping[str, Any] = field(default_factory=dict)
    z2jh: bool = False
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Option:
    """A further choice offered by a profile (image variant, ...)."""

    name: str
    display_name: str
    description: str = ""
    groups: tuple[str, ...] = ()
    choices: tuple[Choice, ...] = ()
    unlisted: UnlistedChoice | None = None

    @property
    def default_choice(self) -> Choice | None:
        """The choice marked default, else the first, else None."""
        return next(
            (c for c in self.choices if c.default), self.choices[0] if self.choices else None
        )


@dataclass(frozen=True)
class Profile:
    """A resource profile."""

    slug: str
    display_name: str
    ides: tuple[Ide, ...]
    description: str = ""
    default: bool = False
    cpu: Cpu = field(default_factory=Cpu)
    memory: Memory = field(default_factory=Memory)
    gpu: Gpu | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    workspace: Workspace | None = None
    extra_volumes: tuple[ExtraVolume, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    groups: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    kubespawner_override: Mapping[str, Any] = field(default_factory=dict)
    culling: Culling = field(default_factory=Culling)
    source: str = ""
    #: A z2jh profileList entry: its choices resolve as KubeSpawner's do (profiles/z2jh.py).
    z2jh: bool = False
