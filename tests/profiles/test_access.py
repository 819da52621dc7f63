"""Group filtering: of profiles, of options and of single choices; admins see everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubflow.profiles import ChoiceError, load_profiles

TEAM = Path(__file__).parent / "fixtures" / "profiles" / "team.yaml"
CATALOG = load_profiles(TEAM)


def slugs(groups: list[str], is_admin: bool = False) -> list[str]:
    return [p.slug for p in CATALOG.profiles_for(groups, is_admin=is_admin)]


def test_profiles_without_groups_are_for_everyone_and_others_for_their_groups() -> None:
    assert slugs([]) == ["cpu"]
    assert slugs(["students"]) == ["cpu"]
    assert slugs(["gpu-users"]) == ["cpu", "a100-x2", "shared-t4"]
    assert slugs(["researchers"]) == ["cpu", "shared-t4"]
    assert slugs([], is_admin=True) == ["cpu", "a100-x2", "shared-t4"]


def test_options_and_single_choices_are_filtered_by_their_own_groups() -> None:
    (everyone,) = [p for p in CATALOG.profiles_for(["students"]) if p.slug == "cpu"]
    assert [o.name for o in everyone.options] == ["flavour"]
    assert [c.slug for c in everyone.options[0].choices] == ["plain", "fancy"]
    staff = CATALOG.profiles_for(["staff"])[0]
    assert [o.name for o in staff.options] == ["flavour", "debug"]
    assert [c.slug for c in staff.options[0].choices] == ["plain", "fancy", "staff-only"]
    admin = CATALOG.profiles_for([], is_admin=True)[0]
    assert [c.slug for c in admin.options[0].choices] == ["plain", "fancy", "staff-only"]


def test_filtering_does_not_change_the_catalog() -> None:
    CATALOG.profiles_for(["students"])
    cpu = CATALOG.get("cpu")
    assert cpu is not None and len(cpu.options) == 2


def test_a_profile_not_offered_is_refused_like_an_unknown_one() -> None:
    with pytest.raises(ChoiceError) as hidden:
        CATALOG.resolve({"profile": "a100-x2"}, ["students"])
    with pytest.raises(ChoiceError) as unknown:
        CATALOG.resolve({"profile": "nonexistent"}, ["students"])
    assert str(hidden.value) == "Profile: unknown profile 'a100-x2'"
    assert str(unknown.value) == "Profile: unknown profile 'nonexistent'"
    assert hidden.value.field == unknown.value.field == "profile"
    assert CATALOG.resolve({"profile": "a100-x2"}, ["gpu-users"]).slug == "a100-x2"
    assert CATALOG.resolve({"profile": "a100-x2"}, [], is_admin=True).slug == "a100-x2"


def test_a_choice_not_offered_to_the_user_is_refused_and_not_revealed() -> None:
    form = {"profile": "cpu", "profile-option-cpu--flavour": "staff-only"}
    with pytest.raises(ChoiceError) as caught:
        CATALOG.resolve(form, ["students"])
    assert str(caught.value) == (
        "Flavour: 'staff-only' is not a choice for 'CPU' (choices: plain, fancy, unlisted-choice)"
    )
    assert caught.value.field == "profile-option-cpu--flavour"
    assert CATALOG.resolve(form, ["staff"]).environment["FLAVOUR"] == "staff"


def test_an_option_not_offered_is_an_unknown_field_and_is_not_applied() -> None:
    form = {"profile": "cpu", "profile-option-cpu--debug": "on"}
    with pytest.raises(ChoiceError) as caught:
        CATALOG.resolve(form, ["students"])
    assert str(caught.value) == "unknown field 'profile-option-cpu--debug'"
    assert "DEBUG" not in CATALOG.resolve({"profile": "cpu"}, ["students"]).environment
    assert CATALOG.resolve({"profile": "cpu"}, ["staff"]).environment["DEBUG"] == "1"
