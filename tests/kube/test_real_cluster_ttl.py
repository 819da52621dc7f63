"""Finished TrainJobs expire by their TTL across a restart of the jobs service, on the real
Trainer (TrainJob has no TTL field of its own)."""

from __future__ import annotations

import time
from pathlib import Path

import kubernetes.client

from hubflow.jobs.kubeflow.backend import KubeflowBackend
from hubflow.jobs.kubeflow.discovery import TORCH_RUNTIME
from hubflow.jobs.kubeflow.manifests import MANAGED_BY
from tests.kube.cluster.fixtures import Namespace
from tests.kube.test_real_cluster import _trainjob, _trainjob_end


def test_finished_trainjobs_expire_after_a_restart_of_the_jobs_service(
    kube_ns: Namespace, tmp_path: Path
) -> None:
    """TrainJob has no TTL field: a jobs service that starts after a TrainJob of hubflow's has
    finished (knowing nothing of it in memory) deletes it once its TTL has passed."""
    cluster, ns = kube_ns.cluster, kube_ns.name
    job = _trainjob("tjttl", runtime=TORCH_RUNTIME)
    job["metadata"]["labels"] = dict(MANAGED_BY)
    custom = kubernetes.client.CustomObjectsApi(cluster.client(kube_ns.hub_kubeconfig))
    custom.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", ns, "trainjobs", job)
    assert cluster.wait_for(lambda: _trainjob_end(cluster, ns, "tjttl"), timeout=180) == {
        "Complete"
    }
    backend = KubeflowBackend(
        tmp_path, cluster.client(kube_ns.hub_kubeconfig), ns, ttl_seconds=3600
    )
    assert backend.expire_trainjobs() == []  # within its TTL
    assert backend.expire_trainjobs(now=time.time() + 3601) == ["tjttl"]
    cluster.wait_for(lambda: cluster.get("trainjobs", ns, "tjttl") is None, timeout=60)
