"""Which Kubeflow API the jobs service picks, asking a real API server (as the hub's account) that
serves the released CRDs of Trainer v2, of Training Operator v1, both, or neither; a Trainer older
than v2.2 (its TrainJob without `runtimePatches`); hubflow's ClusterTrainingRuntime or only the
stock one; and what an admin's forced choice does. The last test asks the full real cluster."""

from __future__ import annotations

import pytest

from hubflow.jobs.kubeflow.discovery import Discovery, NoTrainingAPI
from tests.kube.cluster.fixtures import Namespace
from tests.kube.cluster.jobs_fixtures import BareCluster


def discovery(ns: Namespace, crds: list[str], runtimes: list[str], force: str) -> Discovery:
    """A Discovery as the hub's account of `ns`, once the bare cluster serves exactly that."""
    cluster = ns.cluster
    assert isinstance(cluster, BareCluster)
    cluster.serve(crds, runtimes)
    return Discovery(cluster.client(ns.hub_kubeconfig), force)


@pytest.mark.parametrize(
    ("crds", "runtimes", "force", "framework", "kind"),
    [
        (["v1", "v2"], ["hubflow"], "auto", "pytorch", "TrainJob"),
        (["v1", "v2"], ["hubflow"], "auto", "python", "TrainJob"),
        (["v1", "v2"], ["hubflow"], "auto", "tensorflow", "TFJob"),
        (["v1", "v2"], ["hubflow"], "v1", "pytorch", "PyTorchJob"),
        (["v1", "v2"], [], "auto", "pytorch", "PyTorchJob"),  # no hubflow-torch-distributed
        (["v1", "v2"], ["stock"], "auto", "pytorch", "PyTorchJob"),  # only the stock runtime
        (["v1", "v2-old"], ["hubflow"], "auto", "pytorch", "PyTorchJob"),  # Trainer v2.0/v2.1
        (["v1"], [], "auto", "pytorch", "PyTorchJob"),
        (["v2"], ["hubflow"], "trainjob", "pytorch", "TrainJob"),
    ],
)
def test_the_served_api_decides_the_kind(
    bare_ns: Namespace, crds: list[str], runtimes: list[str], force: str, framework: str, kind: str
) -> None:
    served = discovery(bare_ns, crds, runtimes, force).kind_for(framework)
    assert served.job_kind.kind == kind
    assert served.schema["properties"]["spec"]["type"] == "object"


@pytest.mark.parametrize(
    ("crds", "runtimes", "force", "framework", "message"),
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
            ["v2"],
            [],
            "auto",
            "pytorch",
            "this cluster serves neither trainer.kubeflow.org/v1alpha1 TrainJob (the CRD is "
            "there but ClusterTrainingRuntime 'hubflow-torch-distributed' is not) nor kubeflow.org/v1 "
            "PyTorchJob",
        ),
        (
            ["v2-old"],
            ["hubflow"],
            "trainjob",
            "pytorch",
            "this cluster does not serve trainer.kubeflow.org/v1alpha1 TrainJob (the installed "
            "Trainer is older than v2.2: its TrainJob has no runtimePatches), and this hub is set "
            "to TrainJob",
        ),
        (
            ["v1"],
            [],
            "trainjob",
            "pytorch",
            "this cluster does not serve trainer.kubeflow.org/v1alpha1 TrainJob, and this hub "
            "is set to TrainJob: install Kubeflow Trainer",
        ),
        (
            ["v2"],
            ["hubflow"],
            "auto",
            "tensorflow",
            "this cluster does not serve kubeflow.org/v1 TFJob: install the Kubeflow Training "
            "Operator",
        ),
        (["v1", "v2"], ["hubflow"], "trainjob", "tensorflow", "Kubeflow Trainer has no TensorFlow"),
        (
            ["v2"],
            ["hubflow"],
            "v1",
            "pytorch",
            "this cluster does not serve kubeflow.org/v1 PyTorchJob",
        ),
    ],
)
def test_no_usable_api_is_a_clear_error(
    bare_ns: Namespace,
    crds: list[str],
    runtimes: list[str],
    force: str,
    framework: str,
    message: str,
) -> None:
    with pytest.raises(NoTrainingAPI) as error:
        discovery(bare_ns, crds, runtimes, force).kind_for(framework)
    assert message in str(error.value)


def test_a_bad_forced_choice_names_the_values(bare_ns: Namespace) -> None:
    with pytest.raises(ValueError, match="must be one of auto, trainjob, v1"):
        Discovery(bare_ns.cluster.client(bare_ns.hub_kubeconfig), "mpijob")


def test_the_real_cluster_serves_trainjob_and_the_training_operators_kinds(
    kube_ns: Namespace,
) -> None:
    """The cluster with the real controllers (Trainer v2.3 with the chart's runtime, and the
    Training Operator v1.9), asked by the hub's account with the chart's ClusterRole."""
    api = kube_ns.cluster.client(kube_ns.hub_kubeconfig)
    assert sorted(Discovery(api, "auto").served()) == ["PyTorchJob", "TFJob", "TrainJob"]
    picked = {
        (force, framework): Discovery(api, force).kind_for(framework).job_kind.kind
        for force in ("auto", "v1")
        for framework in ("pytorch", "tensorflow")
    }
    assert picked == {
        ("auto", "pytorch"): "TrainJob",
        ("auto", "tensorflow"): "TFJob",
        ("v1", "pytorch"): "PyTorchJob",
        ("v1", "tensorflow"): "TFJob",
    }
