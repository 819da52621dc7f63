"""The real control plane of the tests is real: the API server's version, RBAC denying the hub's
account what its Role does not grant, Pod Security rejecting a pod, and Kubeflow jobs run by the
real controllers (training-operator's PyTorchJob, Trainer's TrainJob through JobSet) with two ranks
doing a gloo all_reduce in their own network namespaces."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from hubflow.jobs.kubeflow.discovery import TORCH_RUNTIME
from hubflow.jobs.kubeflow.manifests import (
    KUEUE_PRIORITY_LABEL,
    QUEUE_LABEL,
    extra_volume_name,
    placement_for,
    pytorchjob,
)
from hubflow.jobs.store import JobRecord
from hubflow.profiles.server_record import ServerRecord
from tests.kube.cluster.fixtures import Namespace, RealCluster
from tests.kube.cluster.kubeflow import versions

#: Two ranks form a gloo group from the operator's environment and sum their ranks + 1.
ALL_REDUCE = """
import os, socket, torch, torch.distributed as dist
pet = 'PET_MASTER_ADDR' in os.environ
addr = os.environ['PET_MASTER_ADDR' if pet else 'MASTER_ADDR']
port = os.environ['PET_MASTER_PORT' if pet else 'MASTER_PORT']
rank = int(os.environ['PET_NODE_RANK'] if pet else os.environ['RANK'])
world = int(os.environ['PET_NNODES'] if pet else os.environ['WORLD_SIZE'])
if rank == int(os.environ.get('FAIL_RANK', '-1')):
    raise SystemExit(f'rank {rank} fails on purpose')
dist.init_process_group('gloo', init_method=f'tcp://{addr}:{port}', rank=rank, world_size=world)
t = torch.tensor([rank + 1.0])
dist.all_reduce(t)
ip = socket.gethostbyname(socket.gethostname()) if False else ''
print(f'rank {rank}/{world} master {addr} sum {t.item():g}', flush=True)
dist.destroy_process_group()
"""


INDEX = "batch.kubernetes.io/job-completion-index"


def conditions(obj: dict[str, Any] | None) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj or {}).get("status", {}).get("conditions", [])}


def test_server_version_is_the_pinned_release(real_cluster: RealCluster) -> None:
    status, version = real_cluster.request("GET", "/version")
    assert status == 200
    assert version["gitVersion"] == versions()["K8S_VERSION"]
    out = real_cluster.cp.kubectl("version", "-o", "json")
    assert json.loads(out)["serverVersion"]["gitVersion"] == versions()["K8S_VERSION"]
    nodes = {n["metadata"]["name"]: n for n in real_cluster.objects("nodes")}
    gpu = [n for n in nodes.values() if n["status"]["capacity"].get("nvidia.com/gpu")]
    assert gpu and gpu[0]["spec"]["taints"][0]["key"] == "nvidia.com/gpu"


def test_hub_account_is_denied_outside_its_role(kube_ns: Namespace) -> None:
    client = kube_ns.cluster.client(kube_ns.hub_kubeconfig)
    core, apps = kubernetes.client.CoreV1Api(client), kubernetes.client.AppsV1Api(client)
    assert core.list_namespaced_pod(kube_ns.name).items == []  # granted by the chart's Role
    with pytest.raises(ApiException) as denied:
        apps.list_namespaced_deployment(kube_ns.name)
    assert denied.value.status == 403
    assert 'cannot list resource "deployments"' in json.loads(denied.value.body)["message"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "c", "image": "python:3.11"}]}}  # fmt: skip
    with pytest.raises(ApiException) as elsewhere:
        core.create_namespaced_pod("kube-system", pod)
    assert elsewhere.value.status == 403
    # plain kubectl with the same kubeconfig says the same
    kubectl = str(kube_ns.cluster.cp.bins / "kubectl")
    for verb, resource, answer in (("create", "pods", "yes"), ("delete", "nodes", "no"),
                                   ("create", "rolebindings", "no")):  # fmt: skip
        check = subprocess.run(
            [kubectl, "--kubeconfig", str(kube_ns.hub_kubeconfig), "auth", "can-i", verb, resource],
            capture_output=True, text=True,
        )  # fmt: skip
        assert check.stdout.strip() == answer, (verb, resource)


def test_pod_security_rejects_a_privileged_pod(kube_ns: Namespace) -> None:
    cp = kube_ns.cluster.cp
    cp.kubectl("label", "namespace", kube_ns.name, "pod-security.kubernetes.io/enforce=restricted")
    core = kubernetes.client.CoreV1Api(kube_ns.cluster.client(kube_ns.hub_kubeconfig))
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged"},
        "spec": {"containers": [{"name": "c", "image": "python:3.11", "command": ["true"],
                                 "securityContext": {"privileged": True}}]},
    }  # fmt: skip
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(kube_ns.name, pod)
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in json.loads(refused.value.body)["message"]


def _rank(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": "pytorch", "image": "pytorch/pytorch:2.5.1", "command": command,
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }  # fmt: skip


def test_pytorchjob_two_ranks_all_reduce(kube_ns: Namespace) -> None:
    cluster, ns = kube_ns.cluster, kube_ns.name
    replica = {"replicas": 1, "restartPolicy": "Never",
               "template": {"spec": {"containers": [_rank(["python", "-c", ALL_REDUCE])]}}}  # fmt: skip
    job = {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "allreduce"},
        "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": replica}},
    }  # fmt: skip
    custom = kubernetes.client.CustomObjectsApi(cluster.client(kube_ns.hub_kubeconfig))
    custom.create_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", job)
    done = cluster.wait_for(
        lambda: {"Succeeded", "Failed"} & {k for k, v in conditions(cluster.get("pytorchjobs", ns, "allreduce")).items() if v == "True"},
        timeout=180,
    )  # fmt: skip
    logs = {p: cluster.pod_log(ns, p) for p in ("allreduce-master-0", "allreduce-worker-0")}
    assert done == {"Succeeded"}, logs
    assert "rank 0/2 master allreduce-master-0 sum 3" in logs["allreduce-master-0"]
    assert "rank 1/2 master allreduce-master-0 sum 3" in logs["allreduce-worker-0"]
    pods = {p["metadata"]["name"]: p for p in cluster.objects("pods", ns)}
    ips = {p["status"]["podIP"] for p in pods.values()}
    assert len(ips) == 2 and not any(ip.startswith("127.") for ip in ips)


def _trainjob(
    name: str, env: dict[str, str] | None = None, runtime: str = "torch-distributed"
) -> dict[str, Any]:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": name},
        "spec": {
            "runtimeRef": {"name": runtime},
            "trainer": {"numNodes": 2, "image": "pytorch/pytorch:2.5.1", "command": ["python", "-c", ALL_REDUCE],
                        "env": [{"name": k, "value": v} for k, v in (env or {}).items()]},
        },
    }  # fmt: skip


def _trainjob_end(cluster: RealCluster, ns: str, name: str) -> set[str]:
    obj = cluster.get("trainjobs", ns, name)
    return {k for k, v in conditions(obj).items() if v == "True" and k in ("Complete", "Failed")}


def test_trainjob_two_ranks_all_reduce(kube_ns: Namespace) -> None:
    cluster, ns = kube_ns.cluster, kube_ns.name
    custom = kubernetes.client.CustomObjectsApi(cluster.client(kube_ns.hub_kubeconfig))
    custom.create_namespaced_custom_object(
        "trainer.kubeflow.org", "v1alpha1", ns, "trainjobs", _trainjob("tj")
    )
    done = cluster.wait_for(lambda: _trainjob_end(cluster, ns, "tj"), timeout=180)
    pods = sorted(p["metadata"]["name"] for p in cluster.objects("pods", ns))
    logs = {p: cluster.pod_log(ns, p) for p in pods}
    assert done == {"Complete"}, logs
    assert len(pods) == 2
    assert sorted(line.split(" master ")[0] for text in logs.values() for line in text.splitlines() if "sum 3" in line) == [
        "rank 0/2", "rank 1/2",
    ]  # fmt: skip
    assert all("master tj-node-0-0.tj sum 3" in text for text in logs.values())


def test_trainjob_failing_rank_fails_once_on_hubflows_runtime(kube_ns: Namespace) -> None:
    """hubflow's ClusterTrainingRuntime (the chart's): the failing rank's pod is not restarted,
    its Job not retried, the JobSet not recreated; the TrainJob fails."""
    cluster, ns = kube_ns.cluster, kube_ns.name
    custom = kubernetes.client.CustomObjectsApi(cluster.client(kube_ns.hub_kubeconfig))
    job = _trainjob("tjfail", env={"FAIL_RANK": "1"}, runtime=TORCH_RUNTIME)
    custom.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", ns, "trainjobs", job)
    done = cluster.wait_for(lambda: _trainjob_end(cluster, ns, "tjfail"), timeout=240)
    assert done == {"Failed"}
    pods = cluster.objects("pods", ns)
    failing = [p for p in pods if p["metadata"]["annotations"].get(INDEX) == "1"]
    assert len(failing) == 1, [p["metadata"]["name"] for p in pods]  # never recreated
    assert failing[0]["spec"]["restartPolicy"] == "Never"
    assert failing[0]["status"]["phase"] == "Failed"
    assert all(
        s["restartCount"] == 0 for p in pods for s in p["status"].get("containerStatuses", [])
    )
    assert "rank 1 fails on purpose" in cluster.pod_log(ns, failing[0]["metadata"]["name"])
    jobs = cluster.objects("jobs", ns)
    assert all(j["spec"]["backoffLimit"] == 0 for j in jobs)


def test_stock_runtime_would_restart_a_failing_rank(kube_ns: Namespace) -> None:
    """Why hubflow ships its own runtime: on the stock torch-distributed one, JobSet's webhook
    gives the pods restartPolicy OnFailure and the Jobs keep backoffLimit 6."""
    cluster, ns = kube_ns.cluster, kube_ns.name
    custom = kubernetes.client.CustomObjectsApi(cluster.client(kube_ns.hub_kubeconfig))
    job = _trainjob("tjstock", env={"FAIL_RANK": "1"})
    custom.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", ns, "trainjobs", job)
    pods = cluster.wait_for(lambda: cluster.objects("pods", ns), timeout=120)
    assert {p["spec"]["restartPolicy"] for p in pods} == {"OnFailure"}
    assert {j["spec"]["backoffLimit"] for j in cluster.objects("jobs", ns)} == {6}


def test_long_extra_volume_names_stay_dns_labels(kube_ns: Namespace) -> None:
    """The real API server refuses a volume named `extra-` + 60 characters (the simulator took it);
    hubflow's job pods name a profile's extra volume with extra_volume_name (at most 63)."""
    core = kubernetes.client.CoreV1Api(kube_ns.cluster.client(kube_ns.hub_kubeconfig))
    long_name = "datasets-" + "x" * 51

    def pod(volume: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"vol{len(volume)}"},
            "spec": {"restartPolicy": "Never", "volumes": [{"name": volume, "emptyDir": {}}],
                     "containers": [{"name": "c", "image": "python:3.11", "command": ["true"],
                                     "volumeMounts": [{"name": volume, "mountPath": "/data"}]}]},
        }  # fmt: skip

    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(kube_ns.name, pod(f"extra-{long_name}"))
    assert refused.value.status == 422
    assert "must be no more than 63 characters" in json.loads(refused.value.body)["message"]
    name = extra_volume_name(long_name)
    assert len(name) <= 63 and name != extra_volume_name(long_name + "y")
    core.create_namespaced_pod(kube_ns.name, pod(name))


def test_kueue_admits_a_job_by_its_workload_priority_class(kube_ns: Namespace) -> None:
    """The profile's `kueue.x-k8s.io/priority-class` label names a WorkloadPriorityClass and goes
    on the job as is; the pods' PriorityClass (priority_class_name) never does: Kueue would find
    no WorkloadPriorityClass of that name, make no Workload and leave the job suspended."""
    cluster, ns = kube_ns.cluster, kube_ns.name
    override = {
        "extra_labels": {QUEUE_LABEL: "hubflow", KUEUE_PRIORITY_LABEL: "hubflow-high"},
        "priority_class_name": "not-a-workload-priority-class",
    }
    server = ServerRecord("/home/jovyan", [], {}, {"image": "python:3.11", "kubespawner_override": override},
                        namespace=ns, pvc_name="workspace")  # fmt: skip
    placement = placement_for("PyTorchJob", server, 0, ns, 600)
    job = JobRecord(id="0123456789ab", user="alice", framework="pytorch", workers=2, workspace="/home/jovyan",
              state="Pending", created=0.0)  # fmt: skip
    body = pytorchjob(job, placement)
    assert body["metadata"]["labels"][KUEUE_PRIORITY_LABEL] == "hubflow-high"
    custom = kubernetes.client.CustomObjectsApi(cluster.client(kube_ns.hub_kubeconfig))
    custom.create_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", body)

    def admitted() -> dict[str, Any] | None:
        for workload in cluster.objects("workloads.kueue.x-k8s.io", ns):
            if conditions(workload).get("Admitted") == "True":
                return workload
        return None

    workload = cluster.wait_for(admitted, timeout=120)
    ref = workload["spec"]["priorityClassRef"]  # kueue.x-k8s.io/v1beta2
    assert (ref["kind"], ref["name"]) == ("WorkloadPriorityClass", "hubflow-high")
    assert workload["spec"]["priority"] == 1000
    cluster.wait_for(
        lambda: (cluster.get("pytorchjobs", ns, body["metadata"]["name"]) or {})["spec"]["runPolicy"]["suspend"] is False,
        timeout=60,
    )  # fmt: skip


def test_block_owner_deletion_needs_the_finalizers_rule_of_the_chart(kube_ns: Namespace) -> None:
    """OwnerReferencesPermissionEnforcement (on here, as on OpenShift and hardened clusters): the
    payload's owner reference with blockOwnerDeletion needs `update` on the job kind's finalizers,
    which the chart's Role grants; without that rule the API server refuses the object."""
    cluster, ns = kube_ns.cluster, kube_ns.name
    hub = cluster.client(kube_ns.hub_kubeconfig)
    custom, core = kubernetes.client.CustomObjectsApi(hub), kubernetes.client.CoreV1Api(hub)
    rep = {"replicas": 1, "restartPolicy": "Never",
           "template": {"spec": {"containers": [_rank(["true"])]}}}  # fmt: skip
    job = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "owner"},
           "spec": {"runPolicy": {"suspend": True}, "pytorchReplicaSpecs": {"Master": rep}}}  # fmt: skip
    owner = custom.create_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", job)
    ref = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "owner",
           "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}  # fmt: skip

    def secret(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "ownerReferences": [ref]}, "data": {}}  # fmt: skip

    core.create_namespaced_secret(ns, secret("with-chart-role"))  # the chart's Role: allowed
    # The same Role without the finalizers rules (as the chart had it) is refused.
    cp = cluster.cp
    role = json.loads(cp.kubectl("get", "role", "-n", ns, "hubflow-hub", "-o", "json"))
    rules = [r for r in role["rules"] if not any(x.endswith("/finalizers") for x in r["resources"])]
    cp.kubectl("create", "serviceaccount", "-n", ns, "old-hub")
    bare = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "old-hub", "namespace": ns}, "rules": rules}  # fmt: skip
    cp.kubectl("apply", "-f", "-", input=json.dumps(bare))
    cp.kubectl(
        "create",
        "rolebinding",
        "-n",
        ns,
        "old-hub",
        "--role=old-hub",
        f"--serviceaccount={ns}:old-hub",
    )
    old = cp.token_kubeconfig(kube_ns.hub_kubeconfig.parent / "old.kubeconfig", ns, "old-hub")
    old_core = kubernetes.client.CoreV1Api(cluster.client(old))
    with pytest.raises(ApiException) as refused:
        old_core.create_namespaced_secret(ns, secret("with-old-role"))
    assert refused.value.status == 403
    assert "cannot set blockOwnerDeletion" in json.loads(refused.value.body)["message"]


def test_kueue_leaves_a_job_naming_no_workload_priority_class_suspended(kube_ns: Namespace) -> None:
    """What hubflow sent before: a PriorityClass name under Kueue's priority-class label. Kueue
    finds no WorkloadPriorityClass of that name and the job never runs."""
    cluster, ns = kube_ns.cluster, kube_ns.name
    rep = {"replicas": 1, "restartPolicy": "Never",
           "template": {"spec": {"containers": [_rank(["true"])]}}}  # fmt: skip
    labels = {QUEUE_LABEL: "hubflow", KUEUE_PRIORITY_LABEL: "research"}  # a PriorityClass's name
    job = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
           "metadata": {"name": "stuck", "labels": labels},
           "spec": {"runPolicy": {"suspend": True}, "pytorchReplicaSpecs": {"Master": rep}}}  # fmt: skip
    custom = kubernetes.client.CustomObjectsApi(cluster.client(kube_ns.hub_kubeconfig))
    custom.create_namespaced_custom_object("kubeflow.org", "v1", ns, "pytorchjobs", job)
    time.sleep(10)  # Kueue has long admitted a job it can admit by now (the test above: ~1 s)
    admitted = [
        w
        for w in cluster.objects("workloads.kueue.x-k8s.io", ns)
        if conditions(w).get("Admitted") == "True"
    ]
    assert admitted == []
    assert (cluster.get("pytorchjobs", ns, "stuck") or {})["spec"]["runPolicy"]["suspend"] is True
    assert cluster.objects("pods", ns) == []
