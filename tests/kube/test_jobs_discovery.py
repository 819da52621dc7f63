"""Which Kubeflow API the jobs service picks, asking a simulated API server that serves Trainer v2,
Training Operator v1, both, or neither, and what an admin's forced choice does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hubflow.jobs.kubeflow.discovery import Discovery, NoTrainingAPI
from tests.kube.cluster.hubaccount import runtime_file
from tests.kube.sim import Simulator
from tests.kube.sim.cluster import KUBEFLOW

V1, V2 = KUBEFLOW / "v1-crds", KUBEFLOW / "v2-crds"
#: hubflow's ClusterTrainingRuntime, from the chart.
RUNTIMES = runtime_file()


@pytest.fixture
def cluster_with(tmp_path: Path) -> Iterator[object]:
    """cluster_with(crds, preload) -> a running simulator serving those CRDs."""
    started: list[Simulator] = []

    def start(crds: list[Path], preload: list[Path]) -> Simulator:
        sim = Simulator(tmp_path / f"k8s{len(started)}", crds=crds, preload=preload).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.mark.parametrize(
    ("crds", "preload", "force", "framework", "kind"),
    [
        ([V1, V2], [RUNTIMES], "auto", "pytorch", "TrainJob"),
        ([V1, V2], [RUNTIMES], "auto", "python", "TrainJob"),
        ([V1, V2], [RUNTIMES], "auto", "tensorflow", "TFJob"),
        ([V1, V2], [RUNTIMES], "v1", "pytorch", "PyTorchJob"),
        ([V1], [], "auto", "pytorch", "PyTorchJob"),
        ([V1, V2], [], "auto", "pytorch", "PyTorchJob"),  # no hubflow-torch-distributed runtime
        (
            [V1, V2],
            [KUBEFLOW / "v2-runtimes"],
            "auto",
            "pytorch",
            "PyTorchJob",
        ),  # only the stock one
        ([V2], [RUNTIMES], "trainjob", "pytorch", "TrainJob"),
    ],
)
def test_the_served_api_decides_the_kind(
    cluster_with, crds: list[Path], preload: list[Path], force: str, framework: str, kind: str
) -> None:
    sim = cluster_with(crds, preload)
    served = Discovery(sim.client(), force).kind_for(framework)
    assert served.job_kind.kind == kind
    assert served.schema["properties"]["spec"]["type"] == "object"


@pytest.mark.parametrize(
    ("crds", "preload", "force", "framework", "message"),
    [
        (
            [],
            [],
            "auto",
            "pytorch",
            "this cluster serves neither trainer.kubeflow.org/v1alpha1 TrainJob nor "
            "kubeflow.org/v1 PyTorchJob: install Kubeflow Trainer or the Kubeflow Training Operator",
        ),
        (
            [V2],
            [],
            "auto",
            "pytorch",
            "this cluster serves neither trainer.kubeflow.org/v1alpha1 TrainJob (the CRD is "
            "there but ClusterTrainingRuntime 'hubflow-torch-distributed' is not) nor kubeflow.org/v1 "
            "PyTorchJob",
        ),
        (
            [V1],
            [],
            "trainjob",
            "pytorch",
            "this cluster does not serve trainer.kubeflow.org/v1alpha1 TrainJob, and this hub "
            "is set to TrainJob: install Kubeflow Trainer",
        ),
        (
            [V2],
            [RUNTIMES],
            "auto",
            "tensorflow",
            "this cluster does not serve kubeflow.org/v1 TFJob: install the Kubeflow Training "
            "Operator",
        ),
        ([V1, V2], [RUNTIMES], "trainjob", "tensorflow", "Kubeflow Trainer has no TensorFlow"),
        (
            [V2],
            [RUNTIMES],
            "v1",
            "pytorch",
            "this cluster does not serve kubeflow.org/v1 PyTorchJob",
        ),
    ],
)
def test_no_usable_api_is_a_clear_error(
    cluster_with, crds: list[Path], preload: list[Path], force: str, framework: str, message: str
) -> None:
    sim = cluster_with(crds, preload)
    with pytest.raises(NoTrainingAPI) as error:
        Discovery(sim.client(), force).kind_for(framework)
    assert message in str(error.value)


def test_a_bad_forced_choice_names_the_values(cluster_with) -> None:
    sim = cluster_with([], [])
    with pytest.raises(ValueError, match="must be one of auto, trainjob, v1"):
        Discovery(sim.client(), "mpijob")
