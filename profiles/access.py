"""Who sees what: profiles, options, choices and free-text choices filtered by their ``groups``
(a z2jh list's ``allowed_groups`` is read into the same field)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace

from .model import Option, Profile


def allowed(required: Collection[str], groups: Collection[str], is_admin: bool = False) -> bool:
    """Admins see everything; an empty ``groups`` means everyone."""
    return is_admin or not required or any(group in groups for group in required)


def visible_option(
    option: Option, groups: Collection[str], is_admin: bool = False
) -> Option | None:
    """The option with only the choices the user may pick, or None when nothing is left."""
    if not allowed(option.groups, groups, is_admin):
        return None
    choices = tuple(c for c in option.choices if allowed(c.groups, groups, is_admin))
    unlisted = option.unlisted
    if unlisted and not allowed(unlisted.groups, groups, is_admin):
        unlisted = None
    if not choices and not unlisted:
        return None
    return replace(option, choices=choices, unlisted=unlisted)


def visible_profiles(
    profiles: Iterable[Profile], groups: Iterable[str], is_admin: bool = False
) -> list[Profile]:
    """The profiles a user may use, each with only the options and choices offered to them."""
    groups = set(groups)
    visible = []
    for profile in profiles:
        if allowed(profile.groups, groups, is_admin):
            options = (visible_option(option, groups, is_admin) for option in profile.options)
            visible.append(replace(profile, options=tuple(o for o in options if o)))
    return visible
