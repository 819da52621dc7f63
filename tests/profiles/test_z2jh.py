"""z2jh / KubeSpawner profileList entries are accepted verbatim and read into the model."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import yaml

from hubflow.profiles import ChoiceError, ProfileError, load_profiles
from hubflow.profiles.z2jh import apply_overrides

VALUES = Path(__file__).parent / "fixtures" / "profiles" / "z2jh_values.yaml"
ENTRIES = yaml.safe_load(VALUES.read_text())["singleuser"]["profileList"]


def write(tmp_path: Path, data: object, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def without_source(catalog: object) -> list[object]:
    return [dataclasses.replace(p, source="") for p in catalog.profiles]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "shape",
    ["values", "bare list", "profileList mapping", "native profiles list"],
)
def test_the_same_profile_list_loads_in_every_file_shape(tmp_path: Path, shape: str) -> None:
    reference = load_profiles(VALUES)
    data = {
        "values": None,
        "bare list": ENTRIES,
        "profileList mapping": {"profileList": ENTRIES},
        "native profiles list": {"profiles": ENTRIES},
    }[shape]
    catalog = load_profiles(VALUES if data is None else write(tmp_path, data))
    assert [p.slug for p in catalog.profiles] == ["cpu-2-cores-4-gb", "gpu-t4", "vs-code"]
    assert without_source(catalog) == without_source(reference)


def test_well_known_kubespawner_settings_are_read_into_the_model() -> None:
    cpu, gpu, code = load_profiles(VALUES).profiles
    assert cpu.default and cpu.description == "Everyday data science."
    assert cpu.cpu.guarantee == 0.5 and cpu.cpu.limit is not None and cpu.cpu.limit.default == 2
    # KubeSpawner's mem_limit is a JupyterHub byte specification: 4G means 4 GiB there
    assert cpu.memory.guarantee == 2**30
    assert cpu.memory.limit is not None and cpu.memory.limit.default == 4 * 2**30
    assert cpu.environment == {"OMP_NUM_THREADS": "2"}
    assert (
        gpu.gpu is not None and gpu.gpu.resource == "nvidia.com/gpu" and gpu.gpu.count.default == 1
    )
    assert gpu.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert gpu.tolerations == (
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
    )
    assert [(i.name, i.image) for i in gpu.ides] == [
        ("jupyterlab", "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-13")
    ]
    assert [i.name for i in code.ides] == ["vscode"]  # from default_url: /vscode
    # the whole override stays for the Kubernetes spawner, untranslated keys included
    assert gpu.kubespawner_override == ENTRIES[1]["kubespawner_override"]


def test_options_and_unlisted_choices_are_kept(tmp_path: Path) -> None:
    profile = load_profiles(VALUES).profiles[0]
    (option,) = profile.options
    assert [c.slug for c in option.choices] == ["scipy", "datascience"]
    assert option.default_choice is not None and option.default_choice.slug == "scipy"
    assert option.unlisted is not None
    assert option.unlisted.display_name_in_choices == "Other tag..."
    assert option.unlisted.template["image"] == "quay.io/jupyter/scipy-notebook:{value}"


def test_resolving_a_z2jh_profile_applies_choices_as_kubespawner_does() -> None:
    catalog = load_profiles(VALUES)
    resolved = catalog.resolve({"profile": ["gpu-t4"], "profile-option-gpu-t4--gpus": ["two"]}, [])
    assert resolved.gpu_count == 2 and resolved.gpu_resource == "nvidia.com/gpu"
    # the choice's list replaces the profile's, as in KubeSpawner: each toleration once
    keys = [t["key"] for t in resolved.tolerations]
    assert keys == ["nvidia.com/gpu", "hub.example.org/multi-gpu"]
    assert resolved.kubespawner_override["tolerations"] == resolved.tolerations
    # mappings are updated: the profile's labels stay, the GPU count is the choice's
    assert resolved.kubespawner_override["extra_resource_limits"] == {"nvidia.com/gpu": "2"}
    assert resolved.kubespawner_override["extra_labels"] == {"hub.example.org/gpu": "true"}
    # the overrides in KubeSpawner's order, for the Kubernetes spawner to apply
    profile = catalog.get("gpu-t4")
    assert profile is not None
    assert resolved.kubespawner_overrides == [
        ENTRIES[1]["kubespawner_override"],
        ENTRIES[1]["profile_options"]["gpus"]["choices"]["two"]["kubespawner_override"],
    ]


def test_a_z2jh_unlisted_choice_substitutes_the_value_everywhere() -> None:
    catalog = load_profiles(VALUES)
    prefix = "profile-option-cpu-2-cores-4-gb--image"
    form = {prefix: "unlisted-choice", f"{prefix}--unlisted-choice": "2024-12-02"}
    resolved = catalog.resolve(form, [])
    assert resolved.image == "quay.io/jupyter/scipy-notebook:2024-12-02"
    assert resolved.kubespawner_override["extra_labels"] == {"user-image-tag": "2024-12-02"}
    assert resolved.options == {"image": "2024-12-02"}
    form[f"{prefix}--unlisted-choice"] = "2024-12-02; rm -rf /"
    with pytest.raises(ChoiceError, match="Image: a date tag such as 2025-01-13"):
        catalog.resolve(form, [])


def test_keys_kubespawner_ignores_are_accepted_and_logged_once_per_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entries = [
        {
            "display_name": "X",
            "cpu": {"limit": 2},  # a hubflow field, which KubeSpawner ignores in its list
            "form_columns": 2,  # a deployment's key for its own form template
            "kubespawner_override": {"cpu_limt": 2, "default": True, "image": "a/b:1"},
            "profile_options": {
                "image": {
                    "display_name": "Image",
                    "choices": {
                        "a": {
                            "display_name": "A",
                            "slug": "a",
                            "kubespawner_override": {"image": "a/b:2", "default": True},
                        }
                    },
                    "unlisted_choice": {
                        "enabled": True,
                        "description": "Any tag of a/b",
                        "kubespawner_override": {"image": "a/b:{value}"},
                    },
                }
            },
        }
    ]
    with caplog.at_level(logging.INFO, logger="hubflow.profiles.z2jh"):
        catalog = load_profiles(write(tmp_path, entries))
    (record,) = caplog.records
    assert record.getMessage() == (
        f"{tmp_path}/p.yaml: ignored, as KubeSpawner ignores them: "
        "profile 'x' > cpu; profile 'x' > form_columns; "
        "profile 'x' > kubespawner_override.cpu_limt; profile 'x' > kubespawner_override.default; "
        "profile 'x' > profile_options.image.choices.a.slug; "
        "profile 'x' > profile_options.image.choices.a.kubespawner_override.default; "
        "profile 'x' > profile_options.image.unlisted_choice.description"
    )
    (profile,) = catalog.profiles
    assert profile.cpu.limit is None  # ignored, as KubeSpawner ignores it
    assert profile.kubespawner_override == {"image": "a/b:1"}
    assert catalog.resolve({}, []).kubespawner_overrides == [{"image": "a/b:1"}, {"image": "a/b:2"}]


@pytest.mark.parametrize(
    ("option", "path", "message"),
    [
        (
            {"choices": {"a": {"display_name": "A", "kubespawner_override": {"image": 3}}}},
            "choices.a.kubespawner_override.image",
            "must be a unicode string, not the int 3",
        ),
        (
            {"choices": {"a": {"kubespawner_override": {"mem_limit": "2Gi"}}}},
            "choices.a.kubespawner_override.mem_limit",
            "must be bytes or a number with suffix K, M, G or T (1G = 1024³ bytes)",
        ),
        (
            {"unlisted_choice": {"enabled": True, "kubespawner_override": {"image": "{"}}},
            "unlisted_choice.kubespawner_override",
            "cannot put the value in: Single '{' encountered in format string",
        ),
    ],
)
def test_wrong_values_in_choices_are_refused_at_load_with_the_field_named(
    tmp_path: Path, option: dict[str, object], path: str, message: str
) -> None:
    entries = [{"display_name": "X", "profile_options": {"o": {"display_name": "O", **option}}}]
    with pytest.raises(ProfileError) as caught:
        load_profiles(write(tmp_path, entries))
    assert str(caught.value).endswith(f"profile 'x' > profile_options.o.{path}: {message}")


def test_kubernetes_credentials_in_a_server_are_refused_by_name(tmp_path: Path) -> None:
    entries = [
        {"display_name": "X", "kubespawner_override": {"automount_service_account_token": True}}
    ]
    with pytest.raises(ProfileError) as caught:
        load_profiles(write(tmp_path, entries))
    assert str(caught.value).endswith(
        "profile 'x' > kubespawner_override.automount_service_account_token: hubflow keeps "
        "Kubernetes credentials out of users' servers; leave it unset"
    )


def test_mixing_z2jh_and_hubflow_fields_in_one_entry_names_the_field(tmp_path: Path) -> None:
    data = {
        "profiles": [
            {
                "slug": "x",
                "display_name": "X",
                "kubespawner_override": {"cpu_limit": 2},
                "cpu": {"limit": 2},
            }
        ]
    }
    with pytest.raises(ProfileError) as caught:
        load_profiles(write(tmp_path, data))
    assert str(caught.value) == (
        f"{tmp_path}/p.yaml: profile 'x' > cpu: a hubflow field cannot be mixed with z2jh's "
        "'kubespawner_override' in one profile; write this profile in one format"
    )


def test_z2jh_values_are_checked_with_the_paths_of_the_entry(tmp_path: Path) -> None:
    bad_memory = [{"display_name": "X", "kubespawner_override": {"mem_limit": "2Gi"}}]
    with pytest.raises(ProfileError) as caught:
        load_profiles(write(tmp_path, bad_memory))
    assert str(caught.value).endswith(
        "profile 'x' > kubespawner_override.mem_limit: must be bytes or a number with suffix "
        "K, M, G or T (1G = 1024³ bytes)"
    )
    inverted = [{"display_name": "X", "kubespawner_override": {"cpu_guarantee": 4, "cpu_limit": 2}}]
    with pytest.raises(ProfileError) as caught:
        load_profiles(write(tmp_path, inverted))
    assert str(caught.value).endswith(
        "profile 'x' > kubespawner_override.cpu_guarantee: 4 is above the limit 2"
    )


def test_a_profile_list_mapping_has_no_other_keys(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"p\.yaml: hub: unknown field 'hub'$"):
        load_profiles(write(tmp_path, {"profileList": ENTRIES, "hub": {}}))


def test_defaults_of_a_native_file_apply_to_its_z2jh_entries(tmp_path: Path) -> None:
    data = {
        "defaults": {"tolerations": [{"key": "hub.example.org/dedicated", "operator": "Exists"}]},
        "profiles": [ENTRIES[1]],
    }
    profile = load_profiles(write(tmp_path, data)).profiles[0]
    assert [t["key"] for t in profile.tolerations] == [
        "hub.example.org/dedicated",
        "nvidia.com/gpu",
    ]


def test_a_z2jh_unlisted_value_is_translated_and_checked_when_chosen(tmp_path: Path) -> None:
    entries = [
        {
            "display_name": "X",
            "kubespawner_override": {"cpu_limit": 8},
            "profile_options": {
                "cpus": {
                    "display_name": "CPUs",
                    "unlisted_choice": {
                        "enabled": True,
                        "kubespawner_override": {"cpu_limit": "{value}"},
                    },
                }
            },
        }
    ]
    catalog = load_profiles(write(tmp_path, entries))
    with pytest.raises(ChoiceError) as caught:
        catalog.resolve({"profile-option-x--cpus--unlisted-choice": "4"}, [])
    # KubeSpawner's cpu_limit is a number: the substituted text "4" is not one
    assert str(caught.value) == "CPUs: must be a float, not the str '4'"


def test_overrides_update_mappings_recursively_and_replace_the_rest() -> None:
    base = {"extra_labels": {"a": "1", "b": "2"}, "image": "x", "args": ["--a"]}
    extra = {"extra_labels": {"b": None, "c": "3"}, "image_spec": "y", "args": ["--b"], "z": 1}
    # as KubeSpawner's _apply_overrides: a deprecated name is its new one, a non-setting ignored
    assert apply_overrides(base, extra) == {
        "extra_labels": {"a": "1", "c": "3"},
        "image": "y",
        "args": ["--b"],
    }
    # a mapping setting not set yet starts empty: its None values remove nothing
    assert apply_overrides({}, {"environment": {"A": None, "B": "1"}}) == {
        "environment": {"B": "1"}
    }
