"""The simulator's training-operator stand-in on hand-written jobs shaped like the Kubeflow docs'
examples: the pods, their environment (compared with what the operators document), conditions,
suspend, owner references and deletion."""

from __future__ import annotations

import json
import sys
from typing import Any

import kubernetes.client

from tests.kube.sim import Simulator

PRINT_ENV = (
    "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("
    "('PET_', 'MASTER_', 'WORLD_SIZE', 'RANK', 'TF_CONFIG', 'PYTHONUNBUFFERED'))}))"
)
COMMAND = [sys.executable, "-c", PRINT_ENV]


def custom(sim: Simulator) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(sim.client())


def conditions(sim: Simulator, plural: str, name: str) -> dict[str, str]:
    obj = sim.get(plural, "default", name) or {}
    return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}


def printed_env(sim: Simulator, pod: str) -> dict[str, str]:
    return dict(json.loads(sim.pod_log("default", pod).strip().splitlines()[-1]))


def replica(replicas: int, container: str) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "restartPolicy": "Never",
        "template": {
            "spec": {"containers": [{"name": container, "image": "pytorch:x", "command": COMMAND}]}
        },
    }


def test_pytorchjob_pods_get_the_operators_environment(k8s_cluster: Simulator) -> None:
    job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "pytorch-simple"},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": replica(1, "pytorch"),
                "Worker": replica(2, "pytorch"),
            }
        },
    }
    custom(k8s_cluster).create_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "pytorchjobs", job
    )
    k8s_cluster.wait_for(
        lambda: conditions(k8s_cluster, "pytorchjobs", "pytorch-simple").get("Succeeded") == "True",
        timeout=60,
    )
    k8s_cluster.wait_for(
        lambda: all(p["status"]["phase"] == "Succeeded" for p in k8s_cluster.objects("pods")),
        timeout=60,
    )
    pods = {p["metadata"]["name"]: p for p in k8s_cluster.objects("pods", "default")}
    assert sorted(pods) == [
        "pytorch-simple-master-0",
        "pytorch-simple-worker-0",
        "pytorch-simple-worker-1",
    ]
    master_ip = pods["pytorch-simple-master-0"]["status"]["podIP"]
    for rank, name in enumerate(sorted(pods)):
        env = printed_env(k8s_cluster, name)
        port = env["MASTER_PORT"]
        assert env == {
            "PYTHONUNBUFFERED": "1",
            "MASTER_ADDR": master_ip,
            "MASTER_PORT": port,
            "WORLD_SIZE": "3",
            "RANK": str(rank),
            "PET_MASTER_ADDR": master_ip,
            "PET_MASTER_PORT": port,
            "PET_NNODES": "3",
            "PET_NPROC_PER_NODE": "auto",
            "PET_NODE_RANK": str(rank),
        }
        labels = pods[name]["metadata"]["labels"]
        assert labels["training.kubeflow.org/job-name"] == "pytorch-simple"
        assert labels["training.kubeflow.org/replica-type"] == ("master" if rank == 0 else "worker")
        assert pods[name]["metadata"]["ownerReferences"][0]["kind"] == "PyTorchJob"
    status = k8s_cluster.get("pytorchjobs", "default", "pytorch-simple")["status"]
    assert status["replicaStatuses"]["Master"]["succeeded"] == 1
    assert status["replicaStatuses"]["Worker"]["succeeded"] == 2
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Succeeded"] == (
        "PyTorchJobSucceeded"
    )
    services = {s["metadata"]["name"]: s for s in k8s_cluster.objects("services", "default")}
    assert services["pytorch-simple-master-0"]["spec"]["clusterIP"] == "None"
    custom(k8s_cluster).delete_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "pytorchjobs", "pytorch-simple"
    )
    k8s_cluster.wait_for(lambda: not k8s_cluster.objects("pods", "default"))


def test_tfjob_workers_get_tf_config(k8s_cluster: Simulator) -> None:
    job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": "tf-dist"},
        "spec": {"tfReplicaSpecs": {"Worker": replica(2, "tensorflow")}},
    }
    custom(k8s_cluster).create_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "tfjobs", job
    )
    k8s_cluster.wait_for(
        lambda: conditions(k8s_cluster, "tfjobs", "tf-dist").get("Succeeded") == "True", timeout=60
    )
    k8s_cluster.wait_for(
        lambda: all(p["status"]["phase"] == "Succeeded" for p in k8s_cluster.objects("pods")),
        timeout=60,
    )
    hosts = ["tf-dist-worker-0.default.svc:2222", "tf-dist-worker-1.default.svc:2222"]
    for index in range(2):
        env = printed_env(k8s_cluster, f"tf-dist-worker-{index}")
        assert json.loads(env["TF_CONFIG"]) == {
            "cluster": {"worker": hosts},
            "task": {"type": "worker", "index": index},
            "environment": "cloud",
        }
        assert "RANK" not in env


def test_trainjob_waits_while_suspended_then_runs_torch_nodes(k8s_cluster: Simulator) -> None:
    job = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "torch-ddp"},
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "suspend": True,
            "trainer": {"numNodes": 2, "command": COMMAND, "env": [{"name": "A", "value": "1"}]},
        },
    }
    api = custom(k8s_cluster)
    api.create_namespaced_custom_object(
        "trainer.kubeflow.org", "v1alpha1", "default", "trainjobs", job
    )
    k8s_cluster.wait_for(
        lambda: conditions(k8s_cluster, "trainjobs", "torch-ddp").get("Suspended") == "True"
    )
    assert k8s_cluster.objects("pods", "default") == []
    api.patch_namespaced_custom_object(
        "trainer.kubeflow.org",
        "v1alpha1",
        "default",
        "trainjobs",
        "torch-ddp",
        {"spec": {"suspend": False}},
    )
    k8s_cluster.wait_for(
        lambda: conditions(k8s_cluster, "trainjobs", "torch-ddp").get("Complete") == "True",
        timeout=60,
    )
    assert conditions(k8s_cluster, "trainjobs", "torch-ddp")["Suspended"] == "False"
    pods = sorted(
        k8s_cluster.objects("pods", "default"),
        key=lambda p: p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
    )
    assert len(pods) == 2
    node0_ip = pods[0]["status"]["podIP"]
    for index, pod in enumerate(pods):
        assert pod["metadata"]["name"].startswith(f"torch-ddp-node-0-{index}-")
        assert pod["spec"]["containers"][0]["image"].startswith("pytorch/pytorch:")  # the runtime's
        env = printed_env(k8s_cluster, pod["metadata"]["name"])
        assert env == {
            "PET_NNODES": "2",
            "PET_NPROC_PER_NODE": "1",
            "PET_NODE_RANK": str(index),
            "PET_MASTER_ADDR": node0_ip,
            "PET_MASTER_PORT": env["PET_MASTER_PORT"],
        }
    status = k8s_cluster.get("trainjobs", "default", "torch-ddp")["status"]
    assert status["jobsStatus"] == [
        {"name": "node", "active": 0, "ready": 0, "succeeded": 2, "failed": 0, "suspended": 0}
    ]
