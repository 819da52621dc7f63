"""The real Kubeflow controllers (training-operator v1.9, Trainer v2.3 with JobSet) on jobs shaped
like the Kubeflow docs' examples, on the real control plane: the pods, their environment (what the
operators inject), conditions, suspend, owner references and deletion. Each test has its own
namespace; jobs are created as the hub's account (the chart's Role)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client

from tests.kube.cluster.fixtures import Namespace, RealCluster

PRINT_ENV = (
    "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("
    "('PET_', 'MASTER_', 'WORLD_SIZE', 'RANK', 'TF_CONFIG', 'PYTHONUNBUFFERED'))}))"
)
COMMAND = ["python", "-c", PRINT_ENV]


def custom(ns: Namespace) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(ns.cluster.client(ns.hub_kubeconfig))


def conditions(cluster: RealCluster, plural: str, ns: str, name: str) -> dict[str, str]:
    obj = cluster.get(plural, ns, name) or {}
    return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}


def printed_env(cluster: RealCluster, ns: str, pod: str) -> dict[str, str]:
    return dict(json.loads(cluster.pod_log(ns, pod).strip().splitlines()[-1]))


def replica(replicas: int, container: str) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "restartPolicy": "Never",
        "template": {
            "spec": {"containers": [{"name": container, "image": "pytorch:x", "command": COMMAND}]}
        },
    }


def test_pytorchjob_pods_get_the_operators_environment(kube_ns: Namespace) -> None:
    cluster, ns = kube_ns.cluster, kube_ns.name
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
    custom(kube_ns).create_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", job)
    cluster.wait_for(
        lambda: conditions(cluster, "pytorchjobs", ns, "pytorch-simple").get("Succeeded") == "True",
        timeout=180,
    )
    # The job succeeds with its master; the workers may finish after it.
    cluster.wait_for(
        lambda: all(p["status"]["phase"] == "Succeeded" for p in cluster.objects("pods", ns)),
        timeout=120,
    )
    pods = {p["metadata"]["name"]: p for p in cluster.objects("pods", ns)}
    assert sorted(pods) == [
        "pytorch-simple-master-0",
        "pytorch-simple-worker-0",
        "pytorch-simple-worker-1",
    ]
    for rank, name in enumerate(sorted(pods)):
        env = printed_env(cluster, ns, name)
        assert {
            k: env.get(k) for k in ("MASTER_ADDR", "WORLD_SIZE", "RANK", "PYTHONUNBUFFERED")
        } == {
            "MASTER_ADDR": "pytorch-simple-master-0",  # the master's headless Service
            "WORLD_SIZE": "3",
            "RANK": str(rank),
            "PYTHONUNBUFFERED": "1",
        }, env
        assert env["MASTER_PORT"] == "23456"
        labels = pods[name]["metadata"]["labels"]
        assert labels["training.kubeflow.org/job-name"] == "pytorch-simple"
        assert labels["training.kubeflow.org/replica-type"] == ("master" if rank == 0 else "worker")
        assert pods[name]["metadata"]["ownerReferences"][0]["kind"] == "PyTorchJob"
    workers = [pods[n] for n in pods if "worker" in n]
    assert all(p["spec"]["initContainers"][0]["name"] == "init-pytorch" for p in workers)

    def counts() -> dict[str, int]:
        status = (cluster.get("pytorchjobs", ns, "pytorch-simple") or {})["status"]
        return {k: v.get("succeeded", 0) for k, v in status.get("replicaStatuses", {}).items()}

    # The real operator marks the job Succeeded with its master and stops counting then: the
    # workers' count is whatever it saw last (the simulator said 2 succeeded).
    cluster.wait_for(lambda: counts().get("Master") == 1, timeout=30)
    status = (cluster.get("pytorchjobs", ns, "pytorch-simple") or {})["status"]
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Succeeded"] == (
        "PyTorchJobSucceeded"
    )
    services = {s["metadata"]["name"]: s for s in cluster.objects("services", ns)}
    assert services["pytorch-simple-master-0"]["spec"]["clusterIP"] == "None"
    custom(kube_ns).delete_namespaced_custom_object(
        "kubeflow.org", "v1", ns, "pytorchjobs", "pytorch-simple"
    )
    cluster.wait_for(lambda: not cluster.objects("pods", ns), timeout=60)  # the real GC


def test_tfjob_workers_get_tf_config(kube_ns: Namespace) -> None:
    cluster, ns = kube_ns.cluster, kube_ns.name
    job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": "tf-dist"},
        "spec": {"tfReplicaSpecs": {"Worker": replica(2, "tensorflow")}},
    }
    custom(kube_ns).create_namespaced_custom_object("kubeflow.org", "v1", ns, "tfjobs", job)
    cluster.wait_for(
        lambda: conditions(cluster, "tfjobs", ns, "tf-dist").get("Succeeded") == "True", timeout=180
    )
    hosts = [f"tf-dist-worker-0.{ns}.svc:2222", f"tf-dist-worker-1.{ns}.svc:2222"]
    for index in range(2):
        env = printed_env(cluster, ns, f"tf-dist-worker-{index}")
        config = json.loads(env["TF_CONFIG"])
        assert config["cluster"] == {"worker": hosts}
        assert config["task"] == {"type": "worker", "index": index}
        assert "RANK" not in env


def test_trainjob_waits_while_suspended_then_runs_torch_nodes(kube_ns: Namespace) -> None:
    cluster, ns = kube_ns.cluster, kube_ns.name
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
    api = custom(kube_ns)
    api.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", ns, "trainjobs", job)
    cluster.wait_for(
        lambda: conditions(cluster, "trainjobs", ns, "torch-ddp").get("Suspended") == "True",
        timeout=60,
    )
    assert cluster.objects("pods", ns) == []
    api.patch_namespaced_custom_object(
        "trainer.kubeflow.org", "v1alpha1", ns, "trainjobs", "torch-ddp",
        {"spec": {"suspend": False}},
    )  # fmt: skip
    cluster.wait_for(
        lambda: conditions(cluster, "trainjobs", ns, "torch-ddp").get("Complete") == "True",
        timeout=180,
    )
    assert conditions(cluster, "trainjobs", ns, "torch-ddp")["Suspended"] == "False"
    pods = sorted(
        cluster.objects("pods", ns),
        key=lambda p: p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"],
    )
    assert len(pods) == 2
    for index, pod in enumerate(pods):
        assert pod["metadata"]["name"].startswith(f"torch-ddp-node-0-{index}-")
        assert pod["spec"]["containers"][0]["image"].startswith("pytorch/pytorch:")  # the runtime's
        env = printed_env(cluster, ns, pod["metadata"]["name"])
        assert {k: env.get(k) for k in ("PET_NNODES", "PET_NODE_RANK", "PET_MASTER_ADDR")} == {
            "PET_NNODES": "2",
            "PET_NODE_RANK": str(index),
            "PET_MASTER_ADDR": "torch-ddp-node-0-0.torch-ddp",  # JobSet's subdomain
        }, env
        assert env["PET_MASTER_PORT"] == "29500"

    def node_status() -> dict[str, Any]:
        status = (cluster.get("trainjobs", ns, "torch-ddp") or {}).get("status", {})
        return next((s for s in status.get("jobsStatus", []) if s["name"] == "node"), {})

    # JobSet counts Jobs, not pods: the replicated job "node" is one Job of two pods (the
    # simulator had said 2 here).
    cluster.wait_for(lambda: node_status().get("succeeded") == 1, timeout=30)
