"""Users' server pods and job pods meet the Pod Security "restricted" profile (non-root as the
server's uid/gid/fsGroup, no privilege escalation, no capabilities, seccomp RuntimeDefault, no
service account token), checked by tests/kube/pod_security.py; its checker refuses what
Kubernetes would."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import pytest

from hubflow.jobs.kubeflow.manifests import job_resource, placement_for, service_account
from hubflow.jobs.store import JobRecord
from hubflow.profiles.server_record import ServerRecord
from hubflow.spawner.availability import gpu_fields, pod_request
from tests.kube.cluster.fixtures import Namespace
from tests.kube.pod_security import restricted_violations
from tests.kube.test_hubflow_spawner import make_spawner as make_hub_spawner
from tests.kube.test_jobs_manifests import GPU_PROFILE
from tests.spawner.test_kube_manifest import kubeconfig, make_spawner, pod_for  # noqa: F401

RUN_AS = {"uid": 1234, "gid": 567, "fs_gid": 890}


def job_server(namespace: str = "team-a", run_as: dict[str, int] | None = None) -> ServerRecord:
    """A GPU server of alice's in `namespace` that recorded `run_as` (an older one: none)."""
    return ServerRecord(
        "/home/jovyan", [], {}, GPU_PROFILE, namespace, "workspace-alice", run_as=run_as or {}
    )


def job_pod_specs(kind: str, run_as: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The pod specs of a 2-rank job of `kind` from a server that records `run_as`."""
    job = JobRecord(id="0123456789ab", user="alice", framework="pytorch", workers=2)
    obj = job_resource(job, placement_for(kind, job_server(run_as=run_as), 1, "default", 600))
    if kind == "TrainJob":
        (patch,) = obj["spec"]["runtimePatches"]
        (replicated,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
        return [replicated["template"]["spec"]["template"]["spec"]]
    replicas = obj["spec"]["pytorchReplicaSpecs" if kind == "PyTorchJob" else "tfReplicaSpecs"]
    return [replica["template"]["spec"] for replica in replicas.values()]


@pytest.mark.parametrize("profile", ["small-cpu", "gpu-1"])
async def test_a_users_server_pod_is_restricted(profile: str) -> None:
    pod = await pod_for({"profile": profile})
    assert restricted_violations(pod["spec"]) == []
    context = pod["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["automountServiceAccountToken"] is False


async def test_the_server_records_its_ids_for_its_jobs() -> None:
    spawner = make_spawner({"profile": "small-cpu"})
    await spawner.load_user_options()
    assert spawner.get_state()["hubflow"]["run_as"] == {"uid": 1000, "gid": 100, "fs_gid": 100}


@pytest.mark.parametrize("kind", ["TrainJob", "PyTorchJob", "TFJob"])
def test_job_pods_are_restricted_and_run_as_the_server(kind: str) -> None:
    for spec in job_pod_specs(kind, RUN_AS):
        assert restricted_violations(spec) == []
        context = spec["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (1234, 567, 890)
        assert spec["serviceAccountName"] == "hubflow-job"
        assert {"name": "payload", "secret": {"secretName": "hubflow-0123456789ab-payload"}} in (
            spec["volumes"]
        )


def test_job_pods_of_an_older_server_record_run_as_the_spawners_defaults() -> None:
    (spec,) = job_pod_specs("TrainJob")
    context = spec["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (1000, 100, 100)


@pytest.mark.parametrize("kind", ["PyTorchJob", "TFJob"])
def test_v1_job_pods_mount_no_token_and_trainjob_pods_take_the_accounts(kind: str) -> None:
    for spec in job_pod_specs(kind):
        assert spec["automountServiceAccountToken"] is False
    assert service_account("team-a")["automountServiceAccountToken"] is False


def test_the_checker_refuses_what_restricted_refuses() -> None:
    (spec,) = job_pod_specs("TrainJob")
    loose = {**spec, "securityContext": {}, "containers": [{"name": "node"}]}
    assert restricted_violations(loose) == [
        "container 'node' does not set allowPrivilegeEscalation: false",
        "container 'node' does not drop ALL capabilities",
        "container 'node' may run as root (runAsNonRoot is not true)",
        "container 'node' has no RuntimeDefault or Localhost seccomp profile",
    ]
    host = {**spec, "volumes": [{"name": "data", "hostPath": {"path": "/data"}}]}
    assert restricted_violations(host) == ["volume 'data' is of type ['hostPath']"]
    root = {**spec, "securityContext": {**spec["securityContext"], "runAsUser": 0}}
    assert restricted_violations(root) == ["the pod runs as uid 0"]


def test_the_cluster_wide_pod_watch_keeps_only_what_gpus_need() -> None:
    pod = {
        "metadata": {"name": "db", "namespace": "other", "labels": {"app": "db"}},
        "spec": {
            "nodeName": "gpu-node",
            "containers": [
                {
                    "name": "db",
                    "env": [{"name": "PASSWORD", "value": "hunter2"}],
                    "resources": {"limits": {"nvidia.com/gpu": "2"}},
                }
            ],
        },
        "status": {"phase": "Running", "podIP": "10.0.0.9"},
    }
    kept = gpu_fields(pod)
    assert "hunter2" not in json.dumps(kept) and "labels" not in kept["metadata"]
    assert pod_request(kept, "nvidia.com/gpu") == pod_request(pod, "nvidia.com/gpu") == 2
    assert kept["spec"]["nodeName"] == "gpu-node" and kept["status"] == {"phase": "Running"}


async def test_the_hub_watches_its_servers_only_and_keeps_no_environment(
    kubespawner_ns: Namespace,
) -> None:
    """A server started on the real test cluster is followed through a watch selecting
    KubeSpawner's server labels, and the hub's copy of its pod holds no environment (the
    server's API token among it); a pod of anything else is not watched."""
    cluster, ns = kubespawner_ns.cluster, kubespawner_ns.name
    core = kubernetes.client.CoreV1Api(cluster.client(kubespawner_ns.hub_kubeconfig))
    other = {
        "metadata": {"name": "other"},
        "spec": {"containers": [{"name": "c", "image": "x", "command": ["sleep", "60"]}],
                 "terminationGracePeriodSeconds": 1},
    }  # fmt: skip
    core.create_namespaced_pod(ns, other)
    spawner = make_hub_spawner({"profile": "small-cpu"}, ns)
    await spawner.start()
    try:
        reflector = spawner.pod_reflector
        assert reflector.label_selector == (
            "app.kubernetes.io/managed-by=kubespawner,component=singleuser-server"
        )
        pod = reflector.pods[f"{ns}/{spawner.pod_name}"]
        assert pod["status"]["podIP"] and pod["spec"]["containers"][0]["ports"]
        assert "env" not in pod["spec"]["containers"][0]
        assert f"{ns}/other" not in reflector.pods
        full = cluster.get("pods", ns, spawner.pod_name)
        assert full is not None and "JUPYTERHUB_API_TOKEN" in json.dumps(full)
    finally:
        await spawner.stop()
