"""Volumes beyond the workspace: one made for each user, and team volumes a user's groups may
attach from the spawn page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kubernetes.client import CoreV1Api

from tests.helpers.hubclient import HubClient, HubProcess, page_error
from tests.kube.sim import Simulator
from tests.kube.test_kube_hub import user_pods

PROFILES = Path(__file__).parent / "profiles" / "volumes.yaml"
TEAM_DATA = "profile-option-with-scratch--team-data"


def make_claim(cluster: Simulator, name: str) -> None:
    claim = {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    CoreV1Api(cluster.client()).create_namespaced_persistent_volume_claim("default", claim)


def test_a_users_own_volume_is_made_and_kept_and_a_team_volume_is_attached(
    kube_hub_factory: Callable[..., HubProcess], k8s_cluster: Simulator
) -> None:
    make_claim(k8s_cluster, "ml-team-data")
    hub = kube_hub_factory(profiles=[str(PROFILES)])
    alice = HubClient(hub, "alice").login()
    alice.spawn({"profile": "with-scratch", TEAM_DATA: "ml-team"})

    [pod] = user_pods(k8s_cluster)
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {
        "workspace": "workspace-alice",
        "scratch": "scratch-alice",
        "team-data": "ml-team-data",
    }
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["team-data"]["mountPath"] == "/team" and mounts["team-data"]["readOnly"]
    scratch = k8s_cluster.get("persistentvolumeclaims", "default", "scratch-alice")
    assert scratch is not None
    assert scratch["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert scratch["spec"]["storageClassName"] == "fast"
    # The jobs service reads the claim from the server's state, to mount it in job pods too.
    admin = HubClient(hub, "admin").login()
    state = admin.api("GET", "users/alice").json()["servers"][""]["state"]
    assert state["hubflow"]["claims"] == {"scratch": "scratch-alice"}

    alice.stop_server()
    assert k8s_cluster.get("persistentvolumeclaims", "default", "scratch-alice") is not None


def test_a_team_volume_of_another_team_is_refused_before_anything_is_created(
    kube_hub_factory: Callable[..., HubProcess], k8s_cluster: Simulator
) -> None:
    hub = kube_hub_factory(profiles=[str(PROFILES)])
    alice = HubClient(hub, "alice").login()
    r = alice.post_spawn({"profile": "with-scratch", TEAM_DATA: "finance"})

    assert r.status_code != 302
    assert "Team volume" in page_error(r.text) and "finance" in page_error(r.text)
    assert user_pods(k8s_cluster) == []
    assert k8s_cluster.objects("persistentvolumeclaims", "default") == []
