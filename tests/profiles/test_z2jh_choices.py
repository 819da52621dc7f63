"""A z2jh profileList's choices resolve as KubeSpawner resolves them, and allowed_groups is
enforced on the server side."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubflow.profiles import ChoiceError, ProfileCatalog, load_profiles


def catalog(tmp_path: Path, entries: list[dict[str, Any]]) -> ProfileCatalog:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return load_profiles(path)


GROUPED = [
    {
        "display_name": "Open",
        "kubespawner_override": {"image": "a/open:1"},
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {
                    "plain": {"display_name": "Plain", "kubespawner_override": {"image": "a/b:1"}},
                    "secret": {
                        "display_name": "Secret",
                        "allowed_groups": ["staff"],
                        "kubespawner_override": {"image": "a/secret:1"},
                    },
                },
                "unlisted_choice": {
                    "enabled": True,
                    "allowed_groups": ["staff"],
                    "kubespawner_override": {"image": "a/b:{value}"},
                },
            }
        },
    },
    {
        "display_name": "Staff only",
        "allowed_groups": ["staff"],
        "kubespawner_override": {"image": "a/staff:1"},
    },
]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"profile": "staff-only"}, "profile"),
        ({"profile": "open", "profile-option-open--image": "secret"}, "image"),
        ({"profile": "open", "profile-option-open--image--unlisted-choice": "2"}, "image--"),
    ],
)
def test_allowed_groups_keep_a_crafted_form_from_what_the_user_may_not_pick(
    tmp_path: Path, form: dict[str, str], field: str
) -> None:
    profiles = catalog(tmp_path, GROUPED)
    with pytest.raises(ChoiceError) as caught:
        profiles.resolve(form, ["ml"])
    assert field in caught.value.field
    # a member may pick it; what a non-member is offered leaves it out
    assert profiles.resolve(form, ["staff"]).slug == form["profile"]
    (open_profile,) = profiles.profiles_for(["ml"])
    (option,) = open_profile.options
    assert [c.slug for c in option.choices] == ["plain"] and option.unlisted is None


def test_allowed_groups_and_groups_both_admit(tmp_path: Path) -> None:
    entries = [
        {
            "display_name": "X",
            "groups": ["a"],
            "allowed_groups": ["b"],
            "kubespawner_override": {"image": "a/b:1"},
        }
    ]
    profiles = catalog(tmp_path, entries)
    assert [len(profiles.profiles_for([g])) for g in ("a", "b", "c")] == [1, 1, 0]


def test_of_several_defaults_the_first_wins_as_in_kubespawner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    choice = {"display_name": "C", "default": True}
    entries = [
        {"display_name": "One", "kubespawner_override": {"image": "a/one:1"}},
        {
            "display_name": "Two",
            "default": True,
            "profile_options": {
                "size": {
                    "display_name": "Size",
                    "choices": {
                        "s": {"display_name": "S"},
                        "m": {**choice, "kubespawner_override": {"cpu_limit": 2}},
                        "l": {**choice, "kubespawner_override": {"cpu_limit": 4}},
                    },
                }
            },
        },
        {"display_name": "Three", "default": True, "kubespawner_override": {"image": "a/3:1"}},
    ]
    with caplog.at_level(logging.INFO, logger="hubflow.profiles.z2jh"):
        profiles = catalog(tmp_path, entries)
    resolved = profiles.resolve({}, [])
    assert (resolved.slug, resolved.options, resolved.cpu_limit) == ("two", {"size": "m"}, 2.0)
    assert "profile 'two' is the default (the first marked default); also marked: 'three'" in (
        caplog.text
    )


def test_an_empty_list_starts_the_spawners_own_server(tmp_path: Path) -> None:
    resolved = catalog(tmp_path, []).resolve({"profile": "gone"}, ["ml"])
    assert (resolved.slug, resolved.image, resolved.gpu_count) == ("default", None, 0)
    assert resolved.kubespawner_overrides == [{}]


@pytest.mark.parametrize(
    ("url", "ide"), [("/rstudio", "rstudio"), ("/desktop", "jupyterlab"), ("/vscode/", "vscode")]
)
def test_a_choices_default_url_is_kept_and_names_the_ide(
    tmp_path: Path, url: str, ide: str
) -> None:
    entries = [
        {
            "display_name": "X",
            "kubespawner_override": {"image": "a/b:1", "default_url": "/lab"},
            "profile_options": {
                "ui": {
                    "display_name": "Interface",
                    "choices": {"it": {"kubespawner_override": {"default_url": url}}},
                }
            },
        }
    ]
    resolved = catalog(tmp_path, entries).resolve({}, [])
    assert resolved.ide == ide
    assert resolved.kubespawner_override["default_url"] == url


def test_a_gpu_asked_for_only_by_a_choice_is_a_gpu(tmp_path: Path) -> None:
    entries = [
        {
            "display_name": "X",
            "kubespawner_override": {"image": "a/b:1"},
            "profile_options": {
                "gpu": {
                    "display_name": "GPU",
                    "choices": {
                        "none": {"display_name": "None"},
                        "one": {
                            "display_name": "One",
                            "kubespawner_override": {
                                "extra_resource_limits": {"nvidia.com/gpu": "1"}
                            },
                        },
                    },
                }
            },
        }
    ]
    profiles = catalog(tmp_path, entries)
    resolved = profiles.resolve({"profile-option-x--gpu": "one"}, [])
    assert (resolved.gpu_resource, resolved.gpu_count) == ("nvidia.com/gpu", 1)
    resolved = profiles.resolve({}, [])
    assert (resolved.gpu_resource, resolved.gpu_count) == (None, 0)


def test_a_free_text_value_matches_from_its_start_as_in_kubespawner(tmp_path: Path) -> None:
    entries = [
        {
            "display_name": "X",
            "profile_options": {
                "image": {
                    "display_name": "Image",
                    "unlisted_choice": {
                        "enabled": True,
                        "validation_regex": "^pangeo/",
                        "validation_message": "a pangeo image",
                        "kubespawner_override": {"image": "{value}"},
                    },
                }
            },
        }
    ]
    profiles = catalog(tmp_path, entries)
    field = "profile-option-x--image--unlisted-choice"
    assert profiles.resolve({field: "pangeo/base:1"}, []).image == "pangeo/base:1"
    with pytest.raises(ChoiceError, match=r"Image: a pangeo image \(got 'jupyter/base:1'\)"):
        profiles.resolve({field: "jupyter/base:1"}, [])
    # with nothing listed there is no default: a value must be entered (KubeSpawner refuses too)
    with pytest.raises(ChoiceError, match="Image: enter a value"):
        profiles.resolve({}, [])


def test_a_guarantee_above_the_limit_a_choice_sets_is_refused_when_picked(tmp_path: Path) -> None:
    entries = [
        {
            "display_name": "X",
            "kubespawner_override": {"image": "a/b:1", "cpu_guarantee": 4, "cpu_limit": 2},
            "profile_options": {
                "size": {
                    "display_name": "Size",
                    "choices": {
                        "big": {"kubespawner_override": {"cpu_limit": 8}},
                        "small": {"kubespawner_override": {"cpu_limit": 1}},
                    },
                }
            },
        }
    ]
    profiles = catalog(tmp_path, entries)  # loads: a choice may lift the limit
    assert profiles.resolve({}, []).cpu_limit == 8
    with pytest.raises(ChoiceError) as caught:
        profiles.resolve({"profile-option-x--size": "small"}, [])
    assert caught.value.field == "profile"
    assert (
        str(caught.value) == "CPU: the guarantee 4 is above the limit 1 for 'X' with these choices"
    )
