"""A Zero to JupyterHub profile list, as teams run it, spawned by a hub in Kubernetes mode: each
profile and choice becomes a pod that the simulated cluster accepts, schedules and runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.hubclient import HubClient, HubProcess
from tests.kube.sim import NodeSpec, Simulator
from tests.kube.test_kube_hub import user_pods

Z2JH_VALUES = Path(__file__).parents[1] / "profiles" / "fixtures" / "profiles" / "z2jh_values.yaml"


@pytest.fixture
def k8s_nodes() -> list[NodeSpec]:
    """A CPU node and a GKE-style T4 node, tainted as the values file's tolerations expect."""
    t4 = NodeSpec(
        "gke-t4-1",
        gpus={"nvidia.com/gpu": 4},
        labels={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    )
    return [NodeSpec("cpu-1"), t4]


@pytest.mark.parametrize(
    ("form", "node", "image", "gpus"),
    [
        (
            {
                "profile": "cpu-2-cores-4-gb",
                "profile-option-cpu-2-cores-4-gb--image": "datascience",
            },
            "cpu-1",
            "quay.io/jupyter/datascience-notebook:2025-01-13",
            None,
        ),
        (
            {
                "profile": "cpu-2-cores-4-gb",
                "profile-option-cpu-2-cores-4-gb--image--unlisted-choice": "2024-12-02",
            },
            "cpu-1",
            "quay.io/jupyter/scipy-notebook:2024-12-02",
            None,
        ),
        (
            {"profile": "gpu-t4", "profile-option-gpu-t4--gpus": "two"},
            "gke-t4-1",
            "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-13",
            "2",
        ),
    ],
    ids=["image-choice", "unlisted-tag", "two-t4-gpus"],
)
def test_a_z2jh_profile_becomes_a_running_pod(
    kube_hub_factory: Callable[..., HubProcess],
    k8s_cluster: Simulator,
    form: dict[str, str],
    node: str,
    image: str,
    gpus: str | None,
) -> None:
    hub = kube_hub_factory(profiles=[str(Z2JH_VALUES)])
    alice = HubClient(hub, "alice").login()
    alice.spawn(form)

    [pod] = user_pods(k8s_cluster)
    container = pod["spec"]["containers"][0]
    assert pod["spec"]["nodeName"] == node
    assert container["image"] == image
    assert container["resources"]["limits"].get("nvidia.com/gpu") == gpus
    token = {"Authorization": f"token {alice.new_token()}"}
    assert alice.get(alice.server_url() + "api/status", headers=token).status_code == 200
