"""The job objects the Kubeflow backend builds, checked against the real CRDs kept in
../shared/kubeflow (Training Operator v1.9.4, Trainer v2) with undeclared fields refused; and
the framed records that carry results out of the pods' logs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from hubflow.jobs.kubeflow.crdschema import schema_errors
from hubflow.jobs.kubeflow.manifests import (
    job_resource,
    payload_secret,
    placement_for,
    service_account,
)
from hubflow.jobs.store import JobRecord
from hubflow.launcher.channel import DirectoryChannel, encode_record, file_record, split_record
from hubflow.profiles.server_record import ServerRecord
from tests.kube.sim.cluster import KUBEFLOW

CRDS = {
    "TrainJob": "v2-crds/trainer.kubeflow.org_trainjobs.yaml",
    "PyTorchJob": "v1-crds/kubeflow.org_pytorchjobs.yaml",
    "TFJob": "v1-crds/kubeflow.org_tfjobs.yaml",
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


def crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((KUBEFLOW / CRDS[kind]).read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def build(
    kind: str, workers: int = 2, claims: dict[str, str] | None = None
) -> tuple[JobRecord, dict[str, Any]]:
    server = ServerRecord(
        workspace="/home/jovyan",
        gpus=[],
        environment={},
        profile=GPU_PROFILE,
        namespace="team-a",
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
    kind: str,
) -> None:
    _, obj = build(kind, claims={"scratch": "scratch-alice-40example-2ecom"})
    text = json.dumps(obj)
    assert '"claimName": "scratch-alice-40example-2ecom"' in text
    assert '{"name": "extra-scratch", "mountPath": "/scratch", "readOnly": false}' in text
    assert schema_errors(obj, crd_schema(kind)) == []


@pytest.mark.parametrize("kind", sorted(CRDS))
@pytest.mark.parametrize("workers", [1, 3])
def test_every_kind_matches_its_crd(kind: str, workers: int) -> None:
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


def test_an_unknown_field_is_named() -> None:
    _, obj = build("PyTorchJob")
    obj["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["gpus"] = 1
    (problem,) = schema_errors(obj, crd_schema("PyTorchJob"))
    assert problem.startswith("spec.pytorchReplicaSpecs.Master.template.spec.containers[0]:")
    assert "'gpus' was unexpected" in problem


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


def build_server() -> ServerRecord:
    return ServerRecord("/home/jovyan", [], {}, GPU_PROFILE, "team-a", "workspace-alice")


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
