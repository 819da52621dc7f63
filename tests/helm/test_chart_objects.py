"""What the rendered objects do: the hub's permissions, where secrets come from, the profiles
the hub reads, probes and resources, disruption budgets, and the wiring between the parts."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from hubflow.profiles import load_profiles
from tests.helm.chart import (
    CHART,
    NAMESPACE,
    ROOT,
    env_of,
    find,
    hub_container,
    notes,
    render,
)

VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
READ = {"get", "list", "watch"}


def _rules(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [rule for o in objects if o["kind"] == kind for rule in o.get("rules", [])]


def _granted(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in rules
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_cluster_wide_the_hub_only_reads(gpu_objects: list[dict[str, Any]]) -> None:
    """Nodes and pods for GPU availability; the Kubeflow CRDs and runtime by name. No writes."""
    cluster_rules = _rules(gpu_objects, "ClusterRole")
    assert _granted(cluster_rules, "", "nodes") == READ
    assert _granted(cluster_rules, "", "pods") == {"list", "watch"}
    named = {
        (rule["resources"][0], tuple(rule["resourceNames"])): rule["verbs"]
        for rule in cluster_rules
        if "resourceNames" in rule
    }
    assert named == {
        (
            "customresourcedefinitions",
            ("trainjobs.trainer.kubeflow.org", "pytorchjobs.kubeflow.org", "tfjobs.kubeflow.org"),
        ): ["get"],
        ("clustertrainingruntimes", ("hubflow-torch-distributed",)): ["get"],
    }
    assert len(cluster_rules) == 4
    for rule in cluster_rules:
        assert set(rule["verbs"]) <= READ, rule
    roles = {o["metadata"]["name"] for o in gpu_objects if o["kind"] == "ClusterRole"}
    for binding in (o for o in gpu_objects if o["kind"] == "ClusterRoleBinding"):
        assert binding["roleRef"]["name"] in roles
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "hf-hubflow-hub", "namespace": NAMESPACE}
        ]


def test_no_cluster_role_at_all_when_both_reads_are_off() -> None:
    objects = render({"rbac": {"gpuAvailability": False, "trainingApis": False}})
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    only_nodes = render({"rbac": {"trainingApis": False}})
    assert len([o for o in only_nodes if o["kind"] == "ClusterRole"]) == 1


def test_the_hub_writes_only_in_the_users_namespace(gpu_objects: list[dict[str, Any]]) -> None:
    role = find(gpu_objects, "Role", "-hub")
    binding = find(gpu_objects, "RoleBinding", "-hub")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "hubflow-users"
    assert binding["subjects"][0]["namespace"] == NAMESPACE
    rules = role["rules"]
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    assert _granted(rules, "", "pods") == READ | {"create", "delete", "deletecollection"}
    assert _granted(rules, "", "persistentvolumeclaims") == READ | {"create", "delete"}
    assert _granted(rules, "", "events") == READ
    assert _granted(rules, "", "pods/log") == {"get"}
    # Payloads go into Secrets the hub may create but never read back, list or change.
    assert _granted(rules, "", "secrets") == {"create"}
    assert _granted(rules, "networking.k8s.io", "networkpolicies") == {"create"}
    for unused in ("configmaps", "services"):
        assert not _granted(rules, "", unused), unused
    for group, kind in (("kubeflow.org", "pytorchjobs"), ("kubeflow.org", "tfjobs")):
        assert _granted(rules, group, kind) == {"get", "create", "patch", "delete"}, kind
    # TrainJobs also listed: finished ones are deleted after the TTL (TrainJob has no TTL field).
    assert _granted(rules, "trainer.kubeflow.org", "trainjobs") == {
        "get", "list", "create", "patch", "delete",
    }  # fmt: skip
    assert _granted(rules, "", "serviceaccounts") == {"get", "create"}


def test_secrets_come_from_secret_refs_never_from_values(gpu_objects: list[dict[str, Any]]):
    env = env_of(hub_container(gpu_objects))
    refs = {
        "OAUTH_CLIENT_ID": ("hubflow-oidc", "client-id"),
        "OAUTH_CLIENT_SECRET": ("hubflow-oidc", "client-secret"),
        "HUBFLOW_HUB_DB_URL": ("hubflow-db", "hub-url"),
        "HUBFLOW_JOBS_DB_URL": ("hubflow-db", "jobs-url"),
        "CONFIGPROXY_AUTH_TOKEN": ("hf-hubflow-proxy-token", "token"),
    }
    for name, (secret, key) in refs.items():
        assert env[name] == {"secretKeyRef": {"name": secret, "key": key}}, name
    proxy_env = env_of(
        find(gpu_objects, "Deployment", "-proxy")["spec"]["template"]["spec"]["containers"][0]
    )
    assert proxy_env["CONFIGPROXY_AUTH_TOKEN"] == env["CONFIGPROXY_AUTH_TOKEN"]
    # The only Secrets the chart writes are random: the hub's crypt key, the proxy's token.
    secrets = {o["metadata"]["name"]: o for o in gpu_objects if o["kind"] == "Secret"}
    assert sorted(secrets) == ["hf-hubflow-hub-crypt-key", "hf-hubflow-proxy-token"]
    token = base64.b64decode(secrets["hf-hubflow-proxy-token"]["data"]["token"]).decode()
    assert len(token) == 64 and token.isalnum()
    assert token not in yaml.safe_dump(render(files=[]))  # random per installation


def test_an_existing_proxy_token_secret_is_used_as_is() -> None:
    objects = render({"proxy": {"authTokenSecret": "my-token"}})
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Secret"] == [
        "hf-hubflow-hub-crypt-key"
    ]
    env = env_of(hub_container(objects))
    assert env["CONFIGPROXY_AUTH_TOKEN"] == {"secretKeyRef": {"name": "my-token", "key": "token"}}


def test_sqlite_database_lives_on_the_hub_pvc(default_objects: list[dict[str, Any]]) -> None:
    container = hub_container(default_objects)
    env = env_of(container)
    assert "HUBFLOW_HUB_DB_URL" not in env and "HUBFLOW_JOBS_DB_URL" not in env
    pvc = find(default_objects, "PersistentVolumeClaim", "-hub-data")
    assert pvc["spec"]["resources"]["requests"]["storage"] == VALUES["hub"]["storage"]["size"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pod = find(default_objects, "Deployment", "-hub")["spec"]["template"]["spec"]
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert mount["mountPath"] == env["HUBFLOW_DATA_DIR"]


def _profiles_file(objects: list[dict[str, Any]]) -> tuple[str, Any]:
    """Where the hub reads its profiles from and what that file holds, as the pod sees it."""
    container = hub_container(objects)
    pod = find(objects, "Deployment", "-hub")["spec"]["template"]["spec"]
    path = Path(env_of(container)["HUBFLOW_PROFILES"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    config_map = next(
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == volume["configMap"]["name"]
    )
    return config_map["data"][path.name], config_map


def test_profiles_config_map_holds_the_values_profiles(
    example: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    path, objects = example
    given = yaml.safe_load(path.read_text(encoding="utf-8")).get("profiles")
    text, _ = _profiles_file(objects)
    if given is None:  # the shipped profiles
        given = yaml.safe_load((ROOT / "profiles" / "default.yaml").read_text(encoding="utf-8"))
    assert yaml.safe_load(text) == given  # nothing of the shipped profiles merged in
    (tmp_path / "profiles.yaml").write_text(text, encoding="utf-8")
    catalog = load_profiles([tmp_path / "profiles.yaml"])
    assert [p.slug for p in catalog.profiles] == [p["slug"] for p in given["profiles"]]


def test_default_profiles_are_the_shipped_ones(default_objects: list[dict[str, Any]]) -> None:
    shipped = (ROOT / "profiles" / "default.yaml").read_text(encoding="utf-8")
    text, _ = _profiles_file(default_objects)
    assert text == shipped


def test_every_container_has_probes_and_resources(
    example: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, objects = example
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"] for p in container["ports"]}
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["port"] in ports, (container["name"], probe)
            assert container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
    hub = hub_container(objects)
    assert hub["startupProbe"]["httpGet"]["path"] == "/hub/health"
    assert hub["readinessProbe"]["httpGet"]["path"] == "/hub/health"


def test_selectors_match_the_pods_they_mean(example: tuple[Path, list[dict[str, Any]]]) -> None:
    _, objects = example
    pod_labels = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] == "Deployment"
    }

    def selected(selector: dict[str, str]) -> list[str]:
        return [n for n, labels in pod_labels.items() if selector.items() <= labels.items()]

    for service in (o for o in objects if o["kind"] == "Service"):
        assert len(selected(service["spec"]["selector"])) == 1, service["metadata"]["name"]
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert {tuple(selected(b["spec"]["selector"]["matchLabels"])) for b in budgets} == {
        ("hf-hubflow-hub",),
        ("hf-hubflow-proxy",),
    }


def test_the_ingress_sends_users_to_the_proxy(gpu_objects: list[dict[str, Any]]) -> None:
    ingress = find(gpu_objects, "Ingress")
    service = find(gpu_objects, "Service", "-proxy-public")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert ingress["spec"]["rules"][0]["host"] == "hub.example.com"
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert ingress["spec"]["tls"] == [{"secretName": "hubflow-tls", "hosts": ["hub.example.com"]}]


def test_database_upgrade_is_asked_for_explicitly(default_objects: list[dict[str, Any]]) -> None:
    assert "--upgrade-db" not in hub_container(default_objects)["args"]
    objects = render({"hub": {"database": {"upgrade": True}}})
    assert hub_container(objects)["args"][-1] == "--upgrade-db"


def test_budgets_can_be_left_out() -> None:
    objects = render({"hub": {"pdb": {"enabled": False}}, "proxy": {"pdb": {"enabled": False}}})
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]


def test_install_notes_say_how_to_reach_hubflow() -> None:
    default = notes()
    assert "kubectl port-forward -n hubflow service/hf-hubflow-proxy-public 8000:80" in default
    assert "demo users" in default
    ingress = notes(files=[CHART / "examples" / "gpu-oidc-external-db-ingress.yaml"])
    assert "Open: https://hub.example.com/" in ingress
    assert "hubflow-users" in ingress and "demo" not in ingress


def test_a_profile_edit_keeps_the_hub_running_a_config_edit_restarts_it(
    default_objects: list[dict[str, Any]],
) -> None:
    """Only the hub's config is in its pod template's checksum: edited profiles are reloaded
    by the running hub, other changes roll the hub."""

    def hub_template(objects: list[dict[str, Any]]) -> dict[str, Any]:
        return find(objects, "Deployment", "-hub")["spec"]["template"]

    shipped = yaml.safe_load((ROOT / "profiles" / "default.yaml").read_text(encoding="utf-8"))
    shipped["profiles"] = shipped["profiles"][:1]
    edited = render({"profiles": shipped})
    assert find(edited, "ConfigMap", "-profiles") != find(default_objects, "ConfigMap", "-profiles")
    assert hub_template(edited) == hub_template(default_objects)
    configured = render({"hub": {"extraConfig": {"10-x": "c.Spawner.start_timeout = 300"}}})
    assert hub_template(configured) != hub_template(default_objects)
