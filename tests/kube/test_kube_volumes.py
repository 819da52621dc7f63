"""Volumes beyond the workspace, on the real test cluster: one made for each user (of its own
StorageClass, provisioned as the cluster provisions claims), and team volumes a user's groups may
attach from the spawn page."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes.client import CoreV1Api

from tests.helpers.hubclient import HubClient, HubProcess, page_error
from tests.kube.cluster.fixtures import Namespace, RealCluster
from tests.kube.cluster.node_agent import PROVISIONER
from tests.kube.test_kube_hub import user_pods

PROFILES = Path(__file__).parent / "profiles" / "volumes.yaml"
TEAM_DATA = "profile-option-with-scratch--team-data"


@pytest.fixture
def fast_storage(real_cluster: RealCluster) -> Iterator[str]:
    """The `fast` StorageClass the profile's scratch volume asks for (the admin's)."""
    storage = {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
        "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
    }  # fmt: skip
    real_cluster.cp.kubectl("apply", "-f", "-", input=json.dumps(storage))
    yield "fast"
    real_cluster.cp.kubectl("delete", "storageclass", "fast", "--wait=false", check=False)


def make_claim(ns: Namespace, name: str) -> None:
    """A team's existing claim, made by the admin (the hub may not make others' claims)."""
    claim = {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    CoreV1Api(ns.cluster.client()).create_namespaced_persistent_volume_claim(ns.name, claim)


def test_a_users_own_volume_is_made_and_kept_and_a_team_volume_is_attached(
    kube_hub_factory: Callable[..., HubProcess], kube_ns: Namespace, fast_storage: str
) -> None:
    cluster, ns = kube_ns.cluster, kube_ns.name
    make_claim(kube_ns, "ml-team-data")
    hub = kube_hub_factory(profiles=[str(PROFILES)])
    alice = HubClient(hub, "alice").login()
    alice.spawn({"profile": "with-scratch", TEAM_DATA: "ml-team"})

    [pod] = user_pods(kube_ns)
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
    scratch = cluster.get("persistentvolumeclaims", ns, "scratch-alice")
    assert scratch is not None
    assert scratch["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert scratch["spec"]["storageClassName"] == fast_storage
    assert scratch["status"]["phase"] == "Bound"
    # The jobs service reads the claim from the server's state, to mount it in job pods too.
    admin = HubClient(hub, "admin").login()
    state = admin.api("GET", "users/alice").json()["servers"][""]["state"]
    assert state["hubflow"]["claims"] == {"scratch": "scratch-alice"}

    alice.stop_server()
    assert cluster.get("persistentvolumeclaims", ns, "scratch-alice") is not None


def test_a_team_volume_of_another_team_is_refused_before_anything_is_created(
    kube_hub_factory: Callable[..., HubProcess], kube_ns: Namespace
) -> None:
    hub = kube_hub_factory(profiles=[str(PROFILES)])
    alice = HubClient(hub, "alice").login()
    r = alice.post_spawn({"profile": "with-scratch", TEAM_DATA: "finance"})

    assert r.status_code != 302
    assert "Team volume" in page_error(r.text) and "finance" in page_error(r.text)
    assert user_pods(kube_ns) == []
    assert kube_ns.cluster.objects("persistentvolumeclaims", kube_ns.name) == []
