"""ProfileCatalog: the profiles and quotas loaded from an admin's files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .access import visible_profiles
from .choices import Form, resolve
from .display import display_view
from .model import Profile
from .quotas import UserQuota, effective_quota
from .resolved import ResolvedProfile


@dataclass(frozen=True)
class ProfileCatalog:
    """Profiles (each knowing its source file), quotas by group, and the file of each quota."""

    profiles: tuple[Profile, ...] = ()
    quotas: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    quota_sources: Mapping[str, str] = field(default_factory=dict)

    def profiles_for(self, groups: Iterable[str], is_admin: bool = False) -> list[Profile]:
        """The profiles a user in these groups may use, with only the options and choices
        offered to them; admins see all."""
        return visible_profiles(self.profiles, groups, is_admin)

    def get(self, slug: str) -> Profile | None:
        """The profile with this slug (unfiltered), or None."""
        return next((profile for profile in self.profiles if profile.slug == slug), None)

    def display(self, groups: Iterable[str], is_admin: bool = False) -> list[dict[str, Any]]:
        """The spawn page's view of the profiles this user may use."""
        return [display_view(profile) for profile in self.profiles_for(groups, is_admin)]

    def effective_quota(self, groups: Iterable[str]) -> UserQuota:
        """The user's limits (see quotas.effective_quota)."""
        return effective_quota(self.quotas, groups)

    def resolve(self, form: Form, groups: Iterable[str], is_admin: bool = False) -> ResolvedProfile:
        """Check a spawn form for this user and resolve it (see choices.resolve)."""
        return resolve(self.profiles, form, groups, is_admin)
