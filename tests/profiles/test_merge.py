"""hubflow's merge rules: default tolerations and volumes are kept, mappings merged by key."""

from __future__ import annotations

from pathlib import Path

from hubflow.profiles import load_profiles
from hubflow.profiles.merge import merge_defaults, merge_tolerations

TEAM = Path(__file__).parent / "fixtures" / "profiles" / "team.yaml"


def test_a_profile_with_its_own_tolerations_keeps_the_default_ones() -> None:
    gpu = load_profiles(TEAM).get("a100-x2")
    assert gpu is not None
    assert list(gpu.tolerations) == [
        # the default's dedicated/NoSchedule toleration is replaced by the profile's own ...
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "hub.example.org/dedicated",
            "operator": "Equal",
            "value": "gpu",
            "effect": "NoSchedule",
        },
    ]
    cpu = load_profiles(TEAM).get("cpu")
    assert cpu is not None
    # ... and a profile without tolerations simply has the default one
    assert [t["value"] for t in cpu.tolerations] == ["notebooks"]


def test_tolerations_are_concatenated_and_deduplicated_by_key_and_effect() -> None:
    base = [
        {"key": "a", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "a", "operator": "Exists", "effect": "NoExecute"},
        {"key": "b", "operator": "Exists"},
    ]
    extra = [
        {"key": "a", "operator": "Equal", "value": "x", "effect": "NoSchedule"},
        {"key": "b", "operator": "Exists"},
        {"key": "c", "operator": "Exists"},
    ]
    assert merge_tolerations(base, extra) == [
        {"key": "a", "operator": "Exists", "effect": "NoExecute"},
        {"key": "a", "operator": "Equal", "value": "x", "effect": "NoSchedule"},
        {"key": "b", "operator": "Exists"},
        {"key": "c", "operator": "Exists"},
    ]


def test_defaults_merge_rules_for_each_kind_of_field() -> None:
    defaults = {
        "environment": {"A": "1", "B": "1"},
        "node_selector": {"zone": "a"},
        "cpu": {"guarantee": 1, "limit": 2},
        "volumes": {
            "workspace": {"size": "10Gi", "mount_path": "/home/jovyan"},
            "extra": [
                {"name": "d", "mount_path": "/d", "claim": "c1"},
                {"name": "e", "mount_path": "/e", "claim": "e"},
            ],
        },
        "ides": {"jupyterlab": {}, "vscode": {}},
        "groups": ["a"],
        "options": {"x": {"display_name": "X"}, "y": {"display_name": "Y"}},
    }
    profile = {
        "environment": {"B": "2"},
        "node_selector": {"gpu": "yes"},
        "cpu": {"limit": 4},
        "volumes": {
            "workspace": {"size": "50Gi"},
            "extra": [{"name": "d", "mount_path": "/d", "claim": "c2"}],
        },
        "ides": {"rstudio": {}},
        "groups": ["b"],
        "options": {"y": {"display_name": "Mine"}},
    }
    merged = merge_defaults(defaults, profile)
    assert merged["environment"] == {"A": "1", "B": "2"}
    assert merged["node_selector"] == {"zone": "a", "gpu": "yes"}
    assert merged["cpu"] == {"guarantee": 1, "limit": 4}
    assert merged["volumes"]["workspace"] == {"size": "50Gi", "mount_path": "/home/jovyan"}
    assert [(v["name"], v["claim"]) for v in merged["volumes"]["extra"]] == [
        ("e", "e"),
        ("d", "c2"),
    ]
    assert merged["ides"] == {"rstudio": {}}
    assert merged["groups"] == ["b"]
    assert merged["options"] == {"x": {"display_name": "X"}, "y": {"display_name": "Mine"}}


def test_a_chosen_option_adds_tolerations_and_volumes_without_dropping_the_profiles() -> None:
    catalog = load_profiles(TEAM)
    resolved = catalog.resolve({"profile": "cpu", "profile-option-cpu--flavour": "fancy"}, [])
    assert [t["key"] for t in resolved.tolerations] == [
        "hub.example.org/dedicated",
        "hub.example.org/fancy",
    ]
    assert [(v["name"], v["claim"]) for v in resolved.extra_volumes] == [
        ("datasets", "fancy-datasets")
    ]
    assert resolved.environment == {"TEAM": "ml", "LOG_LEVEL": "debug", "FLAVOUR": "fancy"}
