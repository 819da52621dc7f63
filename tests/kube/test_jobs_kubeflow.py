"""The jobs service in Kubernetes mode, as a real process over real HTTP, on the real control plane
with the real Kubeflow controllers (Trainer v2.3 with JobSet, training-operator v1.9, Kueue), as the
hub's ServiceAccount: TrainJob and PyTorchJob runs of 2 ranks that all_reduce, per-rank logs
followed from before the pods exist, the pulled result and report() metrics, a failing rank's
traceback, refusals with nothing created, a cluster without Kubeflow, ownership, a Pending rank's
reason from the real scheduler, cancel deleting the job with its pods and Secret (the real garbage
collector), a TFJob, Kueue holding a job until its queue admits it, and a restart of the service.

The hub is a stand-in serving the two calls the service makes (token -> user, user -> server
state as KubeSpawner records it); everything on the Kubernetes side is the product's own code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import kubernetes.client
import pytest

from hubflow.launcher.api import job_error
from hubflow.launcher.client import JobsAPIError, JobsClient
from hubflow.launcher.payload import cell_payload
from tests.kube.cluster.fixtures import Namespace, RealCluster
from tests.kube.cluster.jobs_fixtures import BareCluster, HubStandIn, JobsService

ALL_REDUCE = (
    "import os, torch, torch.distributed as dist\n"
    "from hubflow.launcher import report\n"
    "dist.init_process_group('gloo')\n"
    "t = torch.tensor([float(os.environ['RANK']) + base])\n"
    "dist.all_reduce(t)\n"
    "total = t.item()\n"
    "report(step=1, total=1, loss=0.25)\n"
    "print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], 'total', total)\n"
    "print('workspace', os.getcwd() == os.environ['HUBFLOW_WORKSPACE'])\n"
    "dist.destroy_process_group()\n"
    "total * 2\n"
)


def wait_state(
    client: JobsClient, job_id: str, states: tuple[str, ...], timeout: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        model = client.get(job_id)
        if model["state"] in states:
            return model
        assert time.monotonic() < deadline, f"job {job_id} still {model['state']}: {model}"
        time.sleep(0.3)


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def job_objects(cluster: RealCluster, ns: str, job_id: str) -> dict[str, list[str]]:
    """Names of the job's objects in the users' namespace, by kind."""
    found = {}
    for kind in ("trainjobs", "pytorchjobs", "tfjobs", "pods", "secrets"):
        names = [
            o["metadata"]["name"]
            for o in cluster.objects(kind, ns)
            if job_id in o["metadata"]["name"]
            or (o["metadata"].get("labels") or {}).get("hubflow.io/job-id") == job_id
        ]
        if names:
            found[kind] = names
    return found


@pytest.mark.parametrize(
    ("kubeflow_api", "kind", "plural"),
    [("auto", "TrainJob", "trainjobs"), ("v1", "PyTorchJob", "pytorchjobs")],
)
def test_two_ranks_all_reduce_with_logs_result_and_metrics(
    jobs_service: Callable[[str], JobsService],
    jobs_ns: Namespace,
    stand_in: HubStandIn,
    kubeflow_api: str,
    kind: str,
    plural: str,
) -> None:
    cluster, ns = jobs_ns.cluster, jobs_ns.name
    service = jobs_service(kubeflow_api)
    alice = service.client(stand_in.add_user("alice"))
    payload = cell_payload(ALL_REDUCE, {"base": 10.0}, pull=["total"]).dumps()
    model = alice.submit(payload, workers=2)
    job_id = model["id"]
    assert model["state"] == "Pending"
    # Follow the logs at once: no pod exists yet, rank 1's starts after rank 0 has an address.
    lines = [(line.rank, line.line) for line in alice.logs(job_id, follow=True)]
    model = wait_state(alice, job_id, ("Succeeded", "Failed"))
    assert model["state"] == "Succeeded", (model, service.log_text())
    assert model["exit_codes"] == {"0": 0, "1": 0}
    assert (0, "rank 0 of 2 total 21.0") in lines and (1, "rank 1 of 2 total 21.0") in lines
    assert (0, "workspace True") in lines and (1, "workspace True") in lines
    assert not any("hubflow-record" in text for _, text in lines)
    result = cloudpickle.loads(alice.result(job_id))
    assert result == {"value": 42.0, "variables": {"total": 21.0}}
    assert model["progress"]["metrics"] == {"loss": 0.25}
    assert model["progress"]["step"] == 1
    # The resource: the user's namespace, labels naming the user, running (not suspended).
    (resource,) = cluster.objects(plural, ns)
    assert resource["kind"] == kind
    assert resource["metadata"]["labels"]["hubflow.io/user"] == "alice"
    assert resource["metadata"]["annotations"]["hubflow.io/user"] == "alice"
    suspended = resource["spec"].get(
        "suspend", resource["spec"].get("runPolicy", {}).get("suspend")
    )
    assert suspended is False
    (secret,) = job_objects(cluster, ns, job_id)["secrets"]
    owner = (cluster.get("secrets", ns, secret) or {})["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == (kind, resource["metadata"]["uid"])
    pods = [
        cluster.get("pods", ns, name) or {} for name in job_objects(cluster, ns, job_id)["pods"]
    ]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == "hubflow-job"
        container = pod["spec"]["containers"][0]
        assert container["image"] == "hubflow/jupyterlab:latest"
        # the API server's canonical quantities (hubflow sends memory as "2000000000")
        assert container["resources"]["limits"] == {"cpu": "1", "memory": "2G"}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/home/jovyan"] == "workspace"
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == ["workspace-alice"]
    account = cluster.get("serviceaccounts", ns, "hubflow-job") or {}
    assert account["automountServiceAccountToken"] is False


def test_a_failing_rank_fails_the_job_with_its_traceback(
    jobs_service: Callable[[str], JobsService], jobs_ns: Namespace, stand_in: HubStandIn
) -> None:
    cluster, ns = jobs_ns.cluster, jobs_ns.name
    service = jobs_service("v1")
    alice = service.client(stand_in.add_user("alice"))
    code = (
        "import os, torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo')\n"
        "if os.environ['RANK'] == '1':\n"
        "    raise ValueError('bad shard on rank 1')\n"
        "dist.all_reduce(torch.ones(1))\n"
    )
    model = alice.submit(cell_payload(code, {}).dumps(), workers=2)
    model = wait_state(alice, model["id"], ("Succeeded", "Failed"))
    assert model["state"] == "Failed", model
    assert model["failing_rank"] == 1
    assert model["error"]["type"] == "builtins.ValueError"
    assert "raise ValueError('bad shard on rank 1')" in model["error"]["traceback"]
    assert model["exit_codes"]["1"] == 1
    error = job_error(model)
    assert isinstance(error, ValueError) and str(error) == "bad shard on rank 1"
    logs = [line.line for line in alice.logs(model["id"], rank=1)]
    assert "ValueError: bad shard on rank 1" in logs
    # rank 0, left waiting in all_reduce, was stopped
    wait_for(
        lambda: all(p["status"]["phase"] != "Running" for p in cluster.objects("pods", ns)),
        "rank 0 to be stopped",
    )


def test_refusals_leave_nothing_behind(
    jobs_service: Callable[[str], JobsService], jobs_ns: Namespace, stand_in: HubStandIn
) -> None:
    cluster, ns = jobs_ns.cluster, jobs_ns.name
    service = jobs_service("auto")
    bob = service.client(stand_in.add_user("bob"))
    payload = cell_payload("x = 1", {}).dumps()
    with pytest.raises(JobsAPIError) as refused:
        bob.submit(payload, workers=5)
    assert (refused.value.status, refused.value.field) == (403, "workers")
    with pytest.raises(JobsAPIError) as refused:
        bob.submit(payload, workers=1, gpus_per_worker=1)
    assert (refused.value.status, refused.value.field) == (422, "gpus_per_worker")
    assert "the server's profile 'small-cpu' grants 0 per pod" in str(refused.value)
    big = cell_payload("len(blob)", {"blob": b"x" * 1_200_000}).dumps()
    with pytest.raises(JobsAPIError) as refused:
        bob.submit(big, workers=1)
    assert (refused.value.status, refused.value.field) == (413, "payload")
    assert "save large data in the workspace" in str(refused.value)
    assert bob.list() == []
    for kind in ("trainjobs", "pytorchjobs", "tfjobs", "pods", "secrets", "networkpolicies"):
        assert cluster.objects(kind, ns) == [], kind
    assert not any((service.data_dir / "jobs").glob("*"))


def test_a_cluster_without_kubeflow_refuses_at_submit(
    bare_ns: Namespace, stand_in: HubStandIn, tmp_path: Path
) -> None:
    """A real API server with no Kubeflow CRDs at all (the bare cluster)."""
    assert isinstance(bare_ns.cluster, BareCluster)
    bare_ns.cluster.serve([], [])
    stand_in.namespace = bare_ns.name
    service = JobsService(tmp_path / "jobs", bare_ns, stand_in, "auto")
    try:
        bob = service.client(stand_in.add_user("bob"))
        asked = time.monotonic()
        with pytest.raises(JobsAPIError) as refused:
            bob.submit(cell_payload("x = 1", {}).dumps(), workers=1)
        # at once: the client retries a 503 only where its answer was lost (SUBMIT_RETRY_S)
        assert time.monotonic() - asked < 15
        assert (refused.value.status, refused.value.field) == (503, "framework")
        assert "serves neither trainer.kubeflow.org/v1alpha1 TrainJob" in str(refused.value)
        assert "nor kubeflow.org/v1 PyTorchJob" in str(refused.value)
        assert bob.list() == []
    finally:
        service.stop()
    assert bare_ns.cluster.objects("secrets", bare_ns.name) == []
    assert not any((service.data_dir / "jobs").glob("*"))


def test_another_user_can_neither_see_nor_cancel_a_job(
    jobs_service: Callable[[str], JobsService], jobs_ns: Namespace, stand_in: HubStandIn
) -> None:
    cluster, ns = jobs_ns.cluster, jobs_ns.name
    service = jobs_service("auto")
    alice = service.client(stand_in.add_user("alice"))
    bob = service.client(stand_in.add_user("bob"))
    admin = service.client(stand_in.add_user("carol", admin=True))
    code = "import time\nprint('working', flush=True)\ntime.sleep(120)\n"
    job_id = alice.submit(cell_payload(code, {}).dumps(), workers=1, framework="python")["id"]
    for call in (
        lambda: bob.get(job_id),
        lambda: bob.cancel(job_id),
        lambda: bob.result(job_id),
        lambda: list(bob.logs(job_id)),
    ):
        with pytest.raises(JobsAPIError) as refused:
            call()
        assert refused.value.status == 404
    assert bob.list() == []
    assert [job["id"] for job in admin.list()] == [job_id]
    assert alice.get(job_id)["state"] in ("Pending", "Running")
    assert len(cluster.objects("trainjobs", ns)) == 1
    alice.cancel(job_id)


def test_a_pending_rank_shows_why_and_cancel_deletes_job_pods_and_secret(
    jobs_service: Callable[[str], JobsService], jobs_ns: Namespace, stand_in: HubStandIn
) -> None:
    cluster, ns = jobs_ns.cluster, jobs_ns.name
    # Another pod holds every GPU of the cluster's one GPU node (4), so no rank can be placed.
    gpus = {"nvidia.com/gpu": "4"}
    holder = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu-holder"},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "c", "image": "python:3.11", "command": ["sleep", "600"],
                            "resources": {"requests": gpus, "limits": gpus}}],
        },
    }  # fmt: skip
    kubernetes.client.CoreV1Api(cluster.client()).create_namespaced_pod(ns, holder)
    wait_for(
        lambda: (cluster.get("pods", ns, "gpu-holder") or {})["spec"].get("nodeName"), "holder"
    )
    service = jobs_service("auto")
    carol = service.client(stand_in.add_user("carol", profile="gpu-1", groups=("gpu-users",)))
    code = "import time\nprint('rank up', flush=True)\ntime.sleep(120)\n"
    job_id = carol.submit(
        cell_payload(code, {}).dumps(), workers=2, gpus_per_worker=1, framework="python"
    )["id"]

    def pending_reason() -> str:
        reason = str(carol.get(job_id)["reason"])  # "rank 1: no pod yet" until it has one
        return reason if "rank 1:" in reason and "rank 1: no pod yet" not in reason else ""

    reason = wait_for(pending_reason, "rank 1's scheduling failure", timeout=120)
    # the real scheduler's message: the GPU node is full, the CPU nodes lack its product label
    assert "rank 1: 0/3 nodes are available: " in reason, reason
    assert "1 Insufficient nvidia.com/gpu" in reason, reason
    assert len(cluster.objects("trainjobs", ns)) == 1
    pods = [p for p in cluster.objects("pods", ns) if p["metadata"]["name"] != "gpu-holder"]
    assert len(pods) == 2
    assert all(
        p["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
        for p in pods
    )
    assert all(
        p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1" for p in pods
    )
    assert set(job_objects(cluster, ns, job_id)) == {"trainjobs", "pods", "secrets"}
    model = carol.cancel(job_id)
    assert model["state"] == "Cancelled"
    # the real garbage collector: TrainJob -> JobSet -> Jobs -> pods, and the payload Secret
    wait_for(lambda: not job_objects(cluster, ns, job_id), "the job's objects to be deleted")


def test_a_tensorflow_job_runs_as_a_tfjob_whose_ranks_come_from_tf_config(
    jobs_service: Callable[[str], JobsService], jobs_ns: Namespace, stand_in: HubStandIn
) -> None:
    cluster, ns = jobs_ns.cluster, jobs_ns.name
    service = jobs_service("auto")
    alice = service.client(stand_in.add_user("alice"))
    code = (
        "import json, os\n"
        "task = json.loads(os.environ['TF_CONFIG'])['task']\n"
        "print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], 'task', task['index'])\n"
        "int(os.environ['RANK'])\n"
    )
    job_id = alice.submit(cell_payload(code, {}).dumps(), workers=2, framework="tensorflow")["id"]
    model = wait_state(alice, job_id, ("Succeeded", "Failed"))
    assert model["state"] == "Succeeded", (model, service.log_text())
    (tfjob,) = cluster.objects("tfjobs", ns)
    assert tfjob["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 2
    lines = {(line.rank, line.line) for line in alice.logs(job_id)}
    assert lines == {(0, "rank 0 of 2 task 0"), (1, "rank 1 of 2 task 1")}
    assert cloudpickle.loads(alice.result(job_id)) == {"value": 0, "variables": {}}


def test_a_queued_profile_leaves_the_job_suspended_until_kueue_admits_it(
    jobs_service: Callable[[str], JobsService], jobs_ns: Namespace, stand_in: HubStandIn
) -> None:
    """Real Kueue: the job waits, suspended, while its LocalQueue does not exist; once the
    admin makes it (pointing at the cluster's ClusterQueue) Kueue admits the job and
    unsuspends it."""
    cluster, ns = jobs_ns.cluster, jobs_ns.name
    cluster.cp.apply([{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                       "metadata": {"name": "research"}, "value": 100}])  # fmt: skip
    service = jobs_service("v1")
    override = {
        "extra_labels": {"kueue.x-k8s.io/queue-name": "team-a"},
        "priority_class_name": "research",
    }
    alice = service.client(stand_in.add_user("alice", kubespawner_override=override))
    code = "print('admitted')\n"
    job_id = alice.submit(cell_payload(code, {}).dumps(), workers=2, framework="python")["id"]
    reason = "suspended: waiting for Kueue to admit it from queue 'team-a'"
    wait_for(lambda: alice.get(job_id)["reason"] == reason, "the Kueue wait to show")
    (job,) = cluster.objects("pytorchjobs", ns)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["spec"]["runPolicy"]["suspend"] is True
    assert job["spec"]["runPolicy"]["schedulingPolicy"] == {
        "queue": "team-a",
        "priorityClass": "research",
    }
    time.sleep(3)  # Kueue has seen the job (it admits one of a queue that exists in ~1 s)
    assert cluster.objects("pods", ns) == []
    assert alice.get(job_id)["state"] == "Pending"
    assert cluster.get("pytorchjobs", ns, job["metadata"]["name"])["spec"]["runPolicy"]["suspend"]
    queue = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "LocalQueue",
             "metadata": {"name": "team-a", "namespace": ns}, "spec": {"clusterQueue": "hubflow"}}  # fmt: skip
    cluster.cp.apply([queue])
    model = wait_state(alice, job_id, ("Succeeded", "Failed"))
    assert model["state"] == "Succeeded", model
    assert {line.line for line in alice.logs(job_id)} == {"admitted"}
    pods = cluster.objects("pods", ns)
    assert {p["spec"]["priorityClassName"] for p in pods} == {"research"}
    (workload,) = cluster.objects("workloads.kueue.x-k8s.io", ns)
    assert workload["spec"]["queueName"] == "team-a"


def test_a_restarted_service_follows_its_running_job_to_the_end(
    jobs_service: Callable[..., JobsService], jobs_ns: Namespace, stand_in: HubStandIn
) -> None:
    cluster, ns = jobs_ns.cluster, jobs_ns.name
    first = jobs_service("auto")
    token = stand_in.add_user("alice")
    alice = first.client(token)
    code = (
        "import os, time\n"
        "print('before', flush=True)\n"
        "while not os.path.exists('go'):\n"
        "    time.sleep(0.1)\n"
        "print('after')\n"
        "'done'\n"
    )
    job_id = alice.submit(cell_payload(code, {}).dumps(), workers=1, framework="python")["id"]
    wait_for(lambda: any(line.line == "before" for line in alice.logs(job_id)), "'before'", 120)
    first.stop()
    second = jobs_service("auto", data_dir=first.data_dir)
    alice = second.client(token)
    assert alice.get(job_id)["state"] == "Running"
    # the workspace: the hostPath volume the node agent provisioned for alice's claim
    claim = cluster.get("persistentvolumeclaims", ns, "workspace-alice") or {}
    volume = cluster.get("persistentvolumes", "", claim["spec"]["volumeName"]) or {}
    (Path(volume["spec"]["hostPath"]["path"]) / "go").write_text("")
    lines = [line.line for line in alice.logs(job_id, follow=True)]
    assert lines == ["before", "after"]
    model = wait_state(alice, job_id, ("Succeeded", "Failed"))
    assert model["state"] == "Succeeded", model
    assert cloudpickle.loads(alice.result(job_id))["value"] == "done"
