"""The job objects the Kubeflow backend builds: checked by hubflow's own schema check against the
CRDs the real cluster serves (Training Operator v1.9.4, Trainer v2.3, installed from their
releases) with undeclared fields refused, and created by the real API server and the controllers'
webhooks as the hub's account (strict field validation); and the framed records that carry results
out of the pods' logs."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from hubflow.jobs.kubeflow.crdschema import schema_errors
from hubflow.jobs.kubeflow.manifests import (
    job_network_policy,
    job_resource,
    payload_secret,
    placement_for,
    service_account,
)
from hubflow.jobs.store import JobRecord
from hubflow.launcher.channel import DirectoryChannel, encode_record, file_record, split_record
from hubflow.profiles.server_record import ServerRecord
from tests.kube.cluster.fixtures import Namespace, RealCluster

CRDS = {
    "TrainJob": "trainjobs.trainer.kubeflow.org",
    "PyTorchJob": "pytorchjobs.kubeflow.org",
    "TFJob": "tfjobs.kubeflow.org",
}
GPU_PROFILE: dict[str, Any] = {
    "slug": "gpu-1",
    "image": "hubflow/jupyterlab-cuda:latest",
    "cpu_guarantee": 4.0,
    "cpu_limit": 8.0,
    "mem_guarantee": 32 * 2**30,
    "mem_limit": 64 * 2**30,
    "gpu_resource": "nvidia.com/gpu",
    "gpu_count": 1,
    "environment": {"NVIDIA_DRIVER_CAPABILITIES": "compute,utility", "JUPYTERHUB_X": "dropped"},
    "node_selector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "kubespawner_override": {
        "extra_labels": {"kueue.x-k8s.io/queue-name": "team-a"},
        "priority_class_name": "research-high",
    },
    "workspace": {"mount_path": "/home/jovyan"},
    "extra_volumes": [
        {"name": "datasets", "mount_path": "/datasets", "read_only": True, "claim": "datasets",
         "host_path": None, "size": None, "storage_class": None},
        {"name": "scratch", "mount_path": "/scratch", "read_only": False, "claim": None,
         "host_path": None, "size": "10Gi", "storage_class": None},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def crd_schema(real_cluster: RealCluster) -> Any:
    """crd_schema(kind) -> the openAPIV3Schema of the CRD the real cluster serves for `kind`."""

    def schema(kind: str) -> dict[str, Any]:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRDS[kind]}"
        status, crd = real_cluster.request("GET", path)
        assert status == 200, crd
        return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])

    return schema


def build(
    kind: str, workers: int = 2, claims: dict[str, str] | None = None, namespace: str = "team-a"
) -> tuple[JobRecord, dict[str, Any]]:
    server = ServerRecord(
        workspace="/home/jovyan",
        gpus=[],
        environment={},
        profile=GPU_PROFILE,
        namespace=namespace,
        pvc_name="workspace-alice-40example-2ecom",
        claims=claims or {},
    )
    job = JobRecord(
        id="0123456789ab", user="alice@example.com", framework="pytorch", workers=workers
    )
    placement = placement_for(kind, server, 1, "default", 600)
    return job, job_resource(job, placement)


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_a_volume_made_for_the_user_is_mounted_by_the_claim_the_spawner_recorded(
    kind: str, crd_schema: Any
) -> None:
    _, obj = build(kind, claims={"scratch": "scratch-alice-40example-2ecom"})
    text = json.dumps(obj)
    assert '"claimName": "scratch-alice-40example-2ecom"' in text
    assert '{"name": "extra-scratch", "mountPath": "/scratch", "readOnly": false}' in text
    assert schema_errors(obj, crd_schema(kind)) == []


@pytest.mark.parametrize("kind", sorted(CRDS))
@pytest.mark.parametrize("workers", [1, 3])
def test_every_kind_matches_its_crd(kind: str, workers: int, crd_schema: Any) -> None:
    _, obj = build(kind, workers)
    assert schema_errors(obj, crd_schema(kind)) == []


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_a_job_carries_user_queue_suspend_and_no_token(kind: str) -> None:
    _, obj = build(kind)
    meta = obj["metadata"]
    assert meta["namespace"] == "team-a"
    assert meta["labels"]["hubflow.io/user"].startswith("alice-")
    assert meta["annotations"]["hubflow.io/user"] == "alice@example.com"
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    text = json.dumps(obj)
    assert "JUPYTERHUB_X" not in text and "NVIDIA_DRIVER_CAPABILITIES" in text
    assert '"claimName": "workspace-alice-40example-2ecom"' in text
    assert '"claimName": "datasets"' in text and "scratch" not in text
    assert '{"name": "extra-datasets", "mountPath": "/datasets", "readOnly": true}' in text
    if kind == "TrainJob":
        assert obj["spec"]["suspend"] is True
        assert obj["spec"]["trainer"]["numNodes"] == 2
        limits = obj["spec"]["trainer"]["resourcesPerNode"]["limits"]
        # priority_class_name is a PriorityClass, not a Kueue WorkloadPriorityClass: no label
        assert "kueue.x-k8s.io/priority-class" not in meta["labels"]
    else:
        policy = obj["spec"]["runPolicy"]
        assert policy["suspend"] is True and policy["ttlSecondsAfterFinished"] == 600
        assert policy["schedulingPolicy"] == {"queue": "team-a", "priorityClass": "research-high"}
        replicas = obj["spec"]["pytorchReplicaSpecs" if kind == "PyTorchJob" else "tfReplicaSpecs"]
        pod = next(iter(replicas.values()))["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["priorityClassName"] == "research-high"
        assert sum(r["replicas"] for r in replicas.values()) == 2
        limits = pod["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "8", "memory": str(64 * 2**30), "nvidia.com/gpu": "1"}


def test_an_unknown_field_is_named(crd_schema: Any) -> None:
    _, obj = build("PyTorchJob")
    obj["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["gpus"] = 1
    (problem,) = schema_errors(obj, crd_schema("PyTorchJob"))
    assert problem.startswith("spec.pytorchReplicaSpecs.Master.template.spec.containers[0]:")
    assert "'gpus' was unexpected" in problem


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_the_real_api_server_and_webhooks_take_every_kind_with_its_secret_and_policy(
    kind: str, kube_ns: Namespace
) -> None:
    """Created as hubflow creates them (suspended; Kueue holds the job: the profile's LocalQueue
    does not exist here), as the hub's account, with strict field validation (an unknown field
    is refused, not dropped); the payload Secret and NetworkPolicy owned by the job."""
    api = kube_ns.cluster.client(kube_ns.hub_kubeconfig)
    job, obj = build(kind, namespace=kube_ns.name)
    group, version = obj["apiVersion"].split("/")
    plural = CRDS[kind].split(".")[0]
    custom = kubernetes.client.CustomObjectsApi(api)
    owner: Any = custom.create_namespaced_custom_object(
        group, version, kube_ns.name, plural, obj, field_validation="Strict"
    )
    assert owner["metadata"]["labels"] == obj["metadata"]["labels"]
    placement = placement_for(kind, build_server(kube_ns.name), 1, kube_ns.name, 600)
    secret: Any = payload_secret(job, placement, owner, b"payload")
    kubernetes.client.CoreV1Api(api).create_namespaced_secret(
        kube_ns.name, secret, field_validation="Strict"
    )
    policy: Any = job_network_policy(job, placement, owner)
    kubernetes.client.NetworkingV1Api(api).create_namespaced_network_policy(
        kube_ns.name, policy, field_validation="Strict"
    )
    for what in ("secrets", "networkpolicies"):
        (made,) = kube_ns.cluster.objects(what, kube_ns.name)
        assert made["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]


def test_the_real_api_server_names_an_unknown_field(kube_ns: Namespace) -> None:
    _, obj = build("PyTorchJob", namespace=kube_ns.name)
    obj["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["gpus"] = 1
    custom = kubernetes.client.CustomObjectsApi(kube_ns.cluster.client(kube_ns.hub_kubeconfig))
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(
            "kubeflow.org", "v1", kube_ns.name, "pytorchjobs", obj, field_validation="Strict"
        )
    assert refused.value.status in (400, 422), refused.value.body
    message = json.loads(refused.value.body)["message"]
    assert 'unknown field "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].gpus"' in (
        message
    ), message


def test_the_payload_secret_is_owned_by_the_job_and_the_account_has_no_token() -> None:
    job, obj = build("TrainJob")
    obj["metadata"]["uid"] = "uid-1"
    placement = placement_for("TrainJob", build_server(), 0, "default", 600)
    secret = payload_secret(job, placement, obj, b"\x80payload")
    (owner,) = secret["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "name": "hubflow-0123456789ab",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert secret["kind"] == "Secret"
    assert secret["data"]["payload.pkl"] == "gHBheWxvYWQ="
    assert set(secret["data"]) == {"payload.pkl", "record.key"}
    assert service_account("team-a")["automountServiceAccountToken"] is False


def build_server(namespace: str = "team-a") -> ServerRecord:
    return ServerRecord("/home/jovyan", [], {}, GPU_PROFILE, namespace, "workspace-alice")


def test_records_travel_through_log_lines(tmp_path) -> None:
    key = b"k" * 32
    channel = DirectoryChannel(tmp_path)
    line = encode_record("error", 1, json.dumps({"type": "builtins.ValueError"}).encode(), key)
    text, record = split_record(b"partial output" + line, key)
    assert text == b"partial output" and record is not None
    file_record(channel, record)
    assert channel.first_error() == {"type": "builtins.ValueError", "rank": 1}
    _, started = split_record(encode_record("started", 0, b"", key), key)
    assert started is not None and started.kind == "started"
    for fake in (b"\x1ehubflow-record secret 0 AA== 00\n", b"\x1ehubflow-record result x !!\n"):
        assert split_record(fake, key) == (fake, None)
