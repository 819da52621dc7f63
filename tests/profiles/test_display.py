"""The spawn page's view of a profile: resources in words and the user's own choices."""

from __future__ import annotations

from pathlib import Path

from hubflow.profiles import describe_resources, display_view, load_profiles

HERE = Path(__file__).parent
CATALOG = load_profiles(HERE / "fixtures" / "profiles" / "team.yaml")
SHIPPED = load_profiles(HERE.parents[1] / "profiles" / "default.yaml")


def profile(catalog: object, slug: str) -> object:
    found = catalog.get(slug)  # type: ignore[attr-defined]
    assert found is not None
    return found


def test_resources_in_words() -> None:
    assert describe_resources(profile(SHIPPED, "small-cpu")) == "1 CPU, 2 GB"
    assert describe_resources(profile(SHIPPED, "gpu-1")) == "8 CPU, 64 GiB, 1× NVIDIA A100"
    assert (
        describe_resources(profile(SHIPPED, "multi-gpu")) == "32 CPU, 256 GiB, 2 or 4× NVIDIA A100"
    )
    assert describe_resources(profile(CATALOG, "cpu")) == "1–8 CPU, 2 GiB–16 GiB"
    assert describe_resources(profile(CATALOG, "shared-t4")) == "1–4× NVIDIA T4 (shared)"


def test_the_view_lists_only_the_users_choices_with_their_form_fields() -> None:
    (view,) = CATALOG.display(["students"])
    assert view["slug"] == "cpu" and view["default"] is True
    assert [ide["name"] for ide in view["ides"]] == ["jupyterlab", "vscode"]
    assert view["ide_field"] == "profile-option-cpu--ide"
    assert view["cpu"] == {
        "field": "profile-option-cpu--cpu",
        "fixed": False,
        "default": 2.0,
        "min": 1.0,
        "max": 8.0,
        "step": 1.0,
        "values": [],
        "allowed": "1 to 8 in steps of 1",
    }
    assert view["gpu"] is None
    (flavour,) = view["options"]
    assert flavour["field"] == "profile-option-cpu--flavour"
    assert [c["slug"] for c in flavour["choices"]] == ["plain", "fancy"]
    assert [c["default"] for c in flavour["choices"]] == [True, False]
    assert flavour["unlisted_choice"]["field"] == "profile-option-cpu--flavour--unlisted-choice"
    assert flavour["unlisted_choice"]["validation_regex"] == "[a-z]+"


def test_a_listed_gpu_count_shows_its_values() -> None:
    view = display_view(profile(CATALOG, "a100-x2"))  # type: ignore[arg-type]
    assert view["gpu"]["values"] == [1, 2] and view["gpu"]["allowed"] == "1, 2"
    assert view["options"][0]["unlisted_choice"] is None
