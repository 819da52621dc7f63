"""The exceptions of the profiles package."""

from __future__ import annotations

from collections.abc import Sequence

Path = Sequence["str | int"]


def format_path(path: Path) -> str:
    """Render a field path as ``gpu.count`` or ``tolerations[0].key``."""
    text = ""
    for part in path:
        text += (
            f"[{part}]"
            if isinstance(part, int) and not isinstance(part, bool)
            else (f".{part}" if text else str(part))
        )
    return text


class Problem(Exception):
    """A problem at a field path inside one profile or file section (internal)."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = tuple(path)
        self.message = message


class ProfileError(ValueError):
    """A profile file is invalid: ``file: profile 'slug' > field.path: message``."""

    def __init__(self, file: str, message: str, where: str | None = None, path: Path = ()) -> None:
        self.file = file
        self.where = where
        self.path = format_path(path)
        self.message = message
        head = " > ".join(part for part in (where, self.path) if part)
        super().__init__(f"{file}: {head}: {message}" if head else f"{file}: {message}")


class ChoiceError(ValueError):
    """A spawn-form value is refused; ``field`` is the form field, str() says why in words."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class QuotaError(Exception):
    """Starting a server or a job would exceed a quota; ``limit`` names the quota field, and
    ``group``/``value`` the group and its total for a group limit."""

    def __init__(
        self, limit: str, message: str, group: str | None = None, value: int | None = None
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message
        self.group = group
        self.value = value
