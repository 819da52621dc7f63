"""A Zero to JupyterHub profile list, as teams run it, spawned by a hub in Kubernetes mode: each
profile and choice becomes a pod that the real cluster accepts, schedules and runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.hubclient import HubClient, HubProcess
from tests.kube.cluster.fixtures import Namespace
from tests.kube.test_kube_hub import user_pods, wait_for_free_gpus

Z2JH_VALUES = Path(__file__).parents[1] / "profiles" / "fixtures" / "profiles" / "z2jh_values.yaml"
GKE_ACCELERATOR = "cloud.google.com/gke-accelerator"


@pytest.fixture
def gke_t4_label(kube_ns: Namespace) -> Iterator[None]:
    """The cluster's GPU node (tainted nvidia.com/gpu=present:NoSchedule, as the values file's
    tolerations expect) labelled as GKE labels a T4 node, for the test; no GPU pod left on it."""
    wait_for_free_gpus(kube_ns.cluster)
    cp = kube_ns.cluster.cp
    cp.kubectl("label", "node", "gpu-a100-1", f"{GKE_ACCELERATOR}=nvidia-tesla-t4", "--overwrite")
    yield
    cp.kubectl("label", "node", "gpu-a100-1", f"{GKE_ACCELERATOR}-")


@pytest.mark.parametrize(
    ("form", "nodes", "image", "gpus"),
    [
        (
            {
                "profile": "cpu-2-cores-4-gb",
                "profile-option-cpu-2-cores-4-gb--image": "datascience",
            },
            {"cpu-1", "cpu-2"},
            "quay.io/jupyter/datascience-notebook:2025-01-13",
            None,
        ),
        (
            {
                "profile": "cpu-2-cores-4-gb",
                "profile-option-cpu-2-cores-4-gb--image--unlisted-choice": "2024-12-02",
            },
            {"cpu-1", "cpu-2"},
            "quay.io/jupyter/scipy-notebook:2024-12-02",
            None,
        ),
        (
            {"profile": "gpu-t4", "profile-option-gpu-t4--gpus": "two"},
            {"gpu-a100-1"},
            "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-13",
            "2",
        ),
    ],
    ids=["image-choice", "unlisted-tag", "two-t4-gpus"],
)
def test_a_z2jh_profile_becomes_a_running_pod(
    kube_hub_factory: Callable[..., HubProcess],
    kube_ns: Namespace,
    gke_t4_label: None,
    form: dict[str, str],
    nodes: set[str],
    image: str,
    gpus: str | None,
) -> None:
    hub = kube_hub_factory(profiles=[str(Z2JH_VALUES)])
    alice = HubClient(hub, "alice").login()
    alice.spawn(form)

    [pod] = user_pods(kube_ns)
    container = pod["spec"]["containers"][0]
    assert pod["spec"]["nodeName"] in nodes
    assert container["image"] == image
    assert container["resources"]["limits"].get("nvidia.com/gpu") == gpus
    token = {"Authorization": f"token {alice.new_token()}"}
    assert alice.get(alice.server_url() + "api/status", headers=token).status_code == 200
