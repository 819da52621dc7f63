"""Server-side resolution of spawn forms: defaults, every choice, and every tampered value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubflow.profiles import ChoiceError, ResolvedProfile, load_profiles, resolve

TEAM = Path(__file__).parent / "fixtures" / "profiles" / "team.yaml"
CATALOG = load_profiles(TEAM)
GPU = ["gpu-users"]


def test_an_empty_form_gives_the_default_profile_with_every_default() -> None:
    resolved = CATALOG.resolve({}, [])
    assert resolved.slug == "cpu" and resolved.ide == "jupyterlab"
    assert resolved.image == "hubflow/jupyterlab:latest"
    assert (resolved.cpu_guarantee, resolved.cpu_limit) == (1.0, 2.0)
    assert (resolved.mem_guarantee, resolved.mem_limit) == (2 * 2**30, 8 * 2**30)
    assert (resolved.gpu_count, resolved.gpu_resource, resolved.gpu_type) == (0, None, None)
    assert resolved.options == {"flavour": "plain"}
    assert resolved.environment == {"TEAM": "ml", "LOG_LEVEL": "debug", "FLAVOUR": "plain"}


def test_every_choice_of_the_form_is_applied() -> None:
    form = {
        "profile": ["a100-x2"],
        "profile-option-a100-x2--ide": ["jupyterlab"],
        "profile-option-a100-x2--gpu": ["2"],
        "profile-option-a100-x2--tag": ["latest"],
        # fields of other profiles are part of every spawn form and are ignored
        "profile-option-cpu--cpu": ["999"],
    }
    resolved = CATALOG.resolve(form, GPU)
    assert resolved.image == "hubflow/jupyterlab-cuda:latest"
    assert (resolved.gpu_count, resolved.gpu_resource, resolved.gpu_type) == (
        2,
        "nvidia.com/gpu",
        "A100",
    )
    assert resolved.node_selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert resolved.options == {"tag": "latest"}
    assert CATALOG.resolve({"profile": "a100-x2"}, GPU).image == "hubflow/jupyterlab-cuda:2025.01"


def test_ranged_resources_take_numbers_and_memory_quantities() -> None:
    form = {
        "profile": "cpu",
        "profile-option-cpu--ide": "vscode",
        "profile-option-cpu--cpu": "4",
        "profile-option-cpu--memory": "12",
    }
    resolved = CATALOG.resolve(form, [])
    assert (resolved.ide, resolved.image) == ("vscode", "hubflow/vscode:latest")
    assert (resolved.cpu_limit, resolved.mem_limit) == (4.0, 12 * 2**30)
    form["profile-option-cpu--memory"] = "4Gi"
    assert CATALOG.resolve(form, []).mem_limit == 4 * 2**30
    shared = CATALOG.resolve({"profile": "shared-t4", "profile-option-shared-t4--gpu": "3"}, GPU)
    assert (shared.gpu_count, shared.gpu_shared, shared.gpu_type) == (3, True, "T4")


def test_the_unlisted_choice_must_match_its_regex_entirely() -> None:
    field = "profile-option-cpu--flavour"
    ok = {"profile": "cpu", field: "unlisted-choice", f"{field}--unlisted-choice": "abc"}
    resolved = CATALOG.resolve(ok, [])
    assert resolved.environment["FLAVOUR"] == "abc" and resolved.options == {"flavour": "abc"}
    # [a-z]+ matches the start of "abc!": only a full match is accepted
    bad = {**ok, f"{field}--unlisted-choice": "abc!"}
    with pytest.raises(ChoiceError) as caught:
        CATALOG.resolve(bad, [])
    assert str(caught.value) == "Flavour: lowercase letters only (got 'abc!')"
    assert caught.value.field == f"{field}--unlisted-choice"


def test_free_text_alone_selects_the_unlisted_choice_and_a_listed_choice_wins_over_it() -> None:
    field = "profile-option-cpu--flavour"
    alone = CATALOG.resolve({f"{field}--unlisted-choice": "xyz"}, [])
    assert alone.environment["FLAVOUR"] == "xyz"
    listed = CATALOG.resolve({field: "fancy", f"{field}--unlisted-choice": "xyz"}, [])
    assert listed.environment["FLAVOUR"] == "fancy"


TAMPERED = {
    "unknown profile": ({"profile": "root"}, [], "profile", "Profile: unknown profile 'root'"),
    "ide not offered": (
        {"profile": "a100-x2", "profile-option-a100-x2--ide": "vscode"},
        GPU,
        "profile-option-a100-x2--ide",
        "IDE: 'vscode' is not offered for 'A100 x2' (offered: jupyterlab)",
    ),
    "gpu count not in list": (
        {"profile": "a100-x2", "profile-option-a100-x2--gpu": "3"},
        GPU,
        "profile-option-a100-x2--gpu",
        "GPU count: 3 is not allowed for 'A100 x2' (allowed: 1, 2)",
    ),
    "gpu count not whole": (
        {"profile": "a100-x2", "profile-option-a100-x2--gpu": "1.5"},
        GPU,
        "profile-option-a100-x2--gpu",
        "GPU count: '1.5' is not a whole number",
    ),
    "gpu count above range": (
        {"profile": "shared-t4", "profile-option-shared-t4--gpu": "5"},
        GPU,
        "profile-option-shared-t4--gpu",
        "GPU count: 5 is not allowed for 'Shared T4' (allowed: 1 to 4 in steps of 1)",
    ),
    "cpu above range": (
        {"profile-option-cpu--cpu": "9"},
        [],
        "profile-option-cpu--cpu",
        "CPU: 9 is not allowed for 'CPU' (allowed: 1 to 8 in steps of 1)",
    ),
    "cpu off the step": (
        {"profile-option-cpu--cpu": "2.5"},
        [],
        "profile-option-cpu--cpu",
        "CPU: 2.5 is not allowed for 'CPU' (allowed: 1 to 8 in steps of 1)",
    ),
    "cpu not a number": (
        {"profile-option-cpu--cpu": "lots"},
        [],
        "profile-option-cpu--cpu",
        "CPU: 'lots' is not a number",
    ),
    "cpu not finite": (
        {"profile-option-cpu--cpu": "NaN"},
        [],
        "profile-option-cpu--cpu",
        "CPU: 'NaN' is not a number",
    ),
    "memory off the step": (
        {"profile-option-cpu--memory": "3Gi"},
        [],
        "profile-option-cpu--memory",
        "Memory: 3 GiB is not allowed for 'CPU' (allowed: 2 GiB to 16 GiB in steps of 2 GiB)",
    ),
    "memory not a quantity": (
        {"profile-option-cpu--memory": "8 gigs"},
        [],
        "profile-option-cpu--memory",
        "Memory: '8 gigs' is not a quantity such as 8Gi (or a number of GiB)",
    ),
    "fixed resource changed": (
        {
            "profile": "a100-x2",
            "profile-option-a100-x2--ide": "jupyterlab",
            "profile-option-a100-x2--cpu": "32",
        },
        GPU,
        "profile-option-a100-x2--cpu",
        "CPU: 32 is not allowed for 'A100 x2' (allowed: 16)",
    ),
    "resource the profile lacks": (
        {"profile": "cpu", "profile-option-cpu--gpu": "1"},
        [],
        "profile-option-cpu--gpu",
        "unknown field 'profile-option-cpu--gpu'",
    ),
    "option value not a choice": (
        {"profile-option-cpu--flavour": "spicy"},
        [],
        "profile-option-cpu--flavour",
        "Flavour: 'spicy' is not a choice for 'CPU' (choices: plain, fancy, unlisted-choice)",
    ),
    "unlisted choice where there is none": (
        {"profile": "a100-x2", "profile-option-a100-x2--tag": "unlisted-choice"},
        GPU,
        "profile-option-a100-x2--tag",
        "Image tag: 'unlisted-choice' is not a choice for 'A100 x2' (choices: latest, pinned)",
    ),
    "unlisted choice left empty": (
        {"profile-option-cpu--flavour": "unlisted-choice"},
        [],
        "profile-option-cpu--flavour--unlisted-choice",
        "Flavour: enter a value",
    ),
    "free text over several lines": (
        {"profile-option-cpu--flavour--unlisted-choice": "abc\ndef"},
        [],
        "profile-option-cpu--flavour--unlisted-choice",
        "Flavour: enter one line of at most 256 characters",
    ),
    "unknown option": (
        {"profile-option-cpu--privileged": "yes"},
        [],
        "profile-option-cpu--privileged",
        "unknown field 'profile-option-cpu--privileged'",
    ),
    "two values": (
        {"profile": ["cpu", "a100-x2"]},
        GPU,
        "profile",
        "Profile: expected one value, got 2",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_form_is_refused_with_the_field_named(case: str) -> None:
    form, groups, field, message = TAMPERED[case]
    with pytest.raises(ChoiceError) as caught:
        CATALOG.resolve(form, groups)
    assert isinstance(caught.value, ValueError)
    assert (caught.value.field, str(caught.value)) == (field, message)


def test_nobody_without_profiles_can_start_anything() -> None:
    with pytest.raises(ChoiceError, match="^Profile: no profile is available to you$"):
        resolve([p for p in CATALOG.profiles if p.groups], {}, ["students"])


def test_resolve_takes_a_catalog_or_a_list_of_profiles() -> None:
    assert (
        resolve(CATALOG, {}, [])
        == resolve(list(CATALOG.profiles), {}, [])
        == CATALOG.resolve({}, [])
    )


def test_the_resolved_profile_round_trips_through_json() -> None:
    resolved = CATALOG.resolve({"profile": "a100-x2", "profile-option-a100-x2--gpu": "2"}, GPU)
    data = json.loads(json.dumps(resolved.to_dict()))
    assert ResolvedProfile.from_dict(data) == resolved
    assert data["workspace"] is None
    assert data["extra_volumes"] == [
        {
            "name": "datasets",
            "mount_path": "/data",
            "read_only": True,
            "claim": "team-datasets",
            "host_path": None,
            "size": None,
            "storage_class": None,
        }
    ]
    with pytest.raises(ValueError, match="unknown field 'privileged'"):
        ResolvedProfile.from_dict({**data, "privileged": True})
    with pytest.raises(ValueError, match="missing required field 'image'"):
        ResolvedProfile.from_dict({k: v for k, v in data.items() if k != "image"})


def test_the_resolved_profile_is_frozen() -> None:
    resolved = CATALOG.resolve({}, [])
    with pytest.raises(AttributeError):
        resolved.image = "evil:latest"  # type: ignore[misc]


def test_free_text_is_checked_again_once_substituted(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "profiles:\n"
        "  - slug: p\n"
        "    display_name: P\n"
        "    ides: {jupyterlab: {image: 'hubflow/jupyterlab:latest'}}\n"
        "    options:\n"
        "      image:\n"
        "        display_name: Image\n"
        "        unlisted_choice: {enabled: true, set: {image: 'registry.example.org/{value}'}}\n"
    )
    catalog = load_profiles(tmp_path)
    field = "profile-option-p--image--unlisted-choice"
    assert catalog.resolve({field: "team/lab:1"}, []).image == "registry.example.org/team/lab:1"
    with pytest.raises(ChoiceError) as caught:
        catalog.resolve({field: "team/lab:1 --privileged"}, [])
    assert (caught.value.field, str(caught.value)) == (
        field,
        "Image: must be an image name without spaces (got 'registry.example.org/team/lab:1 --privileged')",
    )
