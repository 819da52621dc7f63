"""values.schema.json refuses bad values at `helm template` (so at install and upgrade) with a
message naming the field; its profile part stays the profile format's own schema."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from hubflow.profiles import ProfileError, load_profiles
from tests.helm.chart import CHART, EXAMPLES, ROOT, refusal, render

DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
#: A second, independent draft-07 validator (Helm 3 and Helm 4 each use their own).
SECOND = Draft7Validator(json.loads((CHART / "values.schema.json").read_text(encoding="utf-8")))
SHIPPED: dict[str, Any] = yaml.safe_load(
    (ROOT / "profiles" / "default.yaml").read_text(encoding="utf-8")
)


def _with(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chart's default values with `value` set at the dotted `path` (digits index lists)."""
    values = copy.deepcopy(base or DEFAULTS)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = values
    for part in parents:
        node = node[part]
    node[last] = value
    return values


# (values path, bad value, what helm's message must say)
BAD_VALUES = [
    ("hub.storage.size", 10, "at '/hub/storage/size': got number, want string"),
    ("hub.storage.size", "lots", "at '/hub/storage/size': 'lots' does not match pattern"),
    ("hub.resources.requests.memory", "2 GB", "at '/hub/resources/requests/memory'"),
    ("proxy.resources.limits.cpu", "fast", "at '/proxy/resources/limits/cpu'"),
    (
        "hub.resources.requests.gpu",
        "1",
        "at '/hub/resources/requests': additional properties 'gpu'",
    ),
    (
        "hub.storage.type",
        "hostPath",
        "at '/hub/storage/type': value must be one of 'pvc', 'emptyDir'",
    ),
    ("hub.image.pullPolicy", "Sometimes", "at '/hub/image/pullPolicy'"),
    ("hub.image.tag", "has space", "at '/hub/image/tag'"),
    ("hub.extraEnv", {"1BAD": "x"}, "at '/hub/extraEnv': additional properties '1BAD'"),
    ("hub.extraConfig", {"a b": "x"}, "at '/hub/extraConfig': additional properties 'a b'"),
    ("hub.extraEnv", {"GOOD": 1}, "at '/hub/extraEnv/GOOD': got number, want string"),
    ("hub.pdb", {"enabled": "yes"}, "at '/hub/pdb/enabled': got string, want boolean"),
    ("hub.tolerations", [{"key": "a", "operator": "Maybe"}], "at '/hub/tolerations/0/operator'"),
    ("proxy.service.type", "External", "at '/proxy/service/type'"),
    ("proxy.service.nodePort", 80, "at '/proxy/service/nodePort'"),
    ("proxy.service.portt", 80, "at '/proxy/service': additional properties 'portt'"),
    ("proxy.service.loadBalancerSourceRanges", ["office"], "loadBalancerSourceRanges/0'"),
    ("ingress.hosts", ["Not A Host"], "at '/ingress/hosts/0'"),
    ("users.namespace", "Users_NS", "at '/users/namespace'"),
    ("users.networkPolicy.egress", [{"too": []}], "at '/users/networkPolicy/egress/0'"),
    ("rbac.clusterAdmin", True, "at '/rbac': additional properties 'clusterAdmin'"),
    ("auth.type", "ldap", "at '/auth/type'"),
    ("auth.allowedGroups", "ml-team", "at '/auth/allowedGroups': got string, want array"),
    ("hubb", {}, "additional properties 'hubb' not allowed"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_VALUES, ids=lambda x: str(x)[:40])
def test_bad_value_is_refused_naming_the_field(path: str, value: Any, message: str) -> None:
    values = _with(path, value)
    assert message in refusal(values)
    assert not SECOND.is_valid(values)


def _coalesce(base: Any, given: Any) -> Any:
    """Values as Helm merges a values file over the chart's: maps key by key, null removes."""
    if not (isinstance(base, dict) and isinstance(given, dict)):
        return given
    merged = dict(base)
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _coalesce(base.get(key), value)
    return merged


def test_schema_is_draft_07_and_a_second_validator_accepts_the_examples() -> None:
    Draft7Validator.check_schema(SECOND.schema)
    assert SECOND.schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "$defs" not in json.dumps(SECOND.schema)
    for path in EXAMPLES:
        values = _coalesce(DEFAULTS, yaml.safe_load(path.read_text(encoding="utf-8")))
        assert not [e.message for e in SECOND.iter_errors(values)], path.name
    assert SECOND.is_valid(DEFAULTS)


def test_oauth_login_needs_its_client_secret_and_callback() -> None:
    said = refusal(_with("auth.type", "github"))
    assert "at '/auth/client/secretName'" in said
    assert "at '/auth/callbackUrl'" in said


def test_oidc_login_needs_the_provider_endpoints() -> None:
    values = _with("auth", {**DEFAULTS["auth"], "type": "oidc", "callbackUrl": "https://h/cb"})
    values["auth"]["client"]["secretName"] = "oidc"
    said = refusal(values)
    for endpoint in ("authorizeUrl", "tokenUrl", "userdataUrl"):
        assert f"at '/auth/oidc/{endpoint}'" in said
    assert "secretName" not in said


def test_external_database_needs_its_secret() -> None:
    said = refusal(_with("hub.database.type", "external"))
    assert "at '/hub/database/external/secretName'" in said


def test_ingress_needs_a_host() -> None:
    assert "at '/ingress/hosts'" in refusal(_with("ingress.enabled", True))


def test_demo_login_is_refused_outside_port_forward() -> None:
    said = refusal(_with("proxy.service.type", "LoadBalancer"))
    assert "auth.type=demo" in said and "proxy.service.type=ClusterIP" in said


def test_sqlite_is_refused_without_a_pvc() -> None:
    said = refusal(_with("hub.storage.type", "emptyDir"))
    assert "hub.database.type=sqlite" in said and "hub.storage.type=pvc" in said


# Broken profiles: (path under `profiles`, bad value, what helm's message must say). Each is
# refused by hubflow's own loader too, so the chart refuses what the hub would refuse.
BAD_PROFILES = [
    ("profiles.0.cpu.limit", "many", "at '/profiles/profiles/0/cpu/limit'"),
    ("profiles.0.memory.limit", "2 GB", "at '/profiles/profiles/0/memory/limit'"),
    ("profiles.1.memory.limit.step", "4 GiB", "at '/profiles/profiles/1/memory/limit/step'"),
    ("profiles.0.gpus", 1, "at '/profiles/profiles/0': additional properties 'gpus'"),
    ("profiles.2.gpu.count", 0, "at '/profiles/profiles/2/gpu/count'"),
    ("profiles.2.gpu.vendor", "intel", "at '/profiles/profiles/2/gpu/vendor'"),
    ("profiles.0.slug", "Small CPU", "at '/profiles/profiles/0/slug'"),
    ("profiles.3.environment", {"CUDA": 12}, "at '/profiles/profiles/3/environment/CUDA'"),
    ("profiles.0.ides", {"emacs": {}}, "at '/profiles/profiles/0/ides'"),
    # Helm 4.3.1 puts a bad property *name* at a wrong location, but names the key and the rule.
    ("profiles.0.environment", {"1X": "a"}, "invalid propertyName '1X'"),
    ("quotas.default.gpus", -1, "at '/profiles/quotas/default/gpus'"),
    ("defaults.volumes.workspace.size", "big", "at '/profiles/defaults/volumes/workspace/size'"),
    ("profile", [], "at '/profiles': additional properties 'profile'"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_PROFILES, ids=lambda x: str(x)[:40])
def test_broken_profile_is_refused_naming_the_field(
    path: str, value: Any, message: str, tmp_path: Path
) -> None:
    values = _with(f"profiles.{path}", value, base={**DEFAULTS, "profiles": SHIPPED})
    assert message in refusal(values)
    assert not SECOND.is_valid(values)
    profile_file = tmp_path / "profiles.yaml"
    profile_file.write_text(yaml.safe_dump(values["profiles"]), encoding="utf-8")
    with pytest.raises(ProfileError):
        load_profiles([profile_file])


def test_a_profile_without_a_name_is_refused() -> None:
    profiles = copy.deepcopy(SHIPPED)
    del profiles["profiles"][0]["display_name"]
    said = refusal(_with("profiles", profiles))
    assert "at '/profiles/profiles/0'" in said and "missing property 'display_name'" in said


def test_shipped_profiles_pass_the_chart_schema() -> None:
    objects = render(_with("profiles", SHIPPED))
    assert any(o["metadata"]["name"].endswith("-profiles") for o in objects)


def _sync_module() -> ModuleType:
    """helm/sync_profiles.py, imported."""
    sys.path.insert(0, str(ROOT / "helm"))
    try:
        import sync_profiles
    finally:
        sys.path.remove(str(ROOT / "helm"))
    return sync_profiles


def test_chart_copies_are_the_profile_formats_own(capsys: pytest.CaptureFixture[str]) -> None:
    """values.schema.json's profile.* definitions are generated from profiles/schema.json, and
    the chart's default profiles are profiles/default.yaml: run helm/sync_profiles.py if not."""
    assert _sync_module().main(["--check"]) == 0, capsys.readouterr().out


def test_drift_is_detected() -> None:
    """The check above can fail: a change to the profile schema changes the chart's; its own
    definitions stay."""
    sync = _sync_module()
    chart = json.loads(sync.VALUES_SCHEMA.read_text(encoding="utf-8"))
    profile = json.loads(sync.PROFILE_SCHEMA.read_text(encoding="utf-8"))
    current = sync.synced(chart, profile)
    profile["$defs"]["gpu"]["properties"]["vendor"]["enum"].append("intel")
    changed = sync.synced(current, profile)
    assert changed != current
    assert "intel" in changed["definitions"]["profile.gpu"]["properties"]["vendor"]["enum"]
    assert changed["definitions"]["quantity"] == chart["definitions"]["quantity"]
    assert "$defs" not in sync.render(changed)
