"""The jobs service in Kubernetes mode, as a real process over real HTTP, against the simulated
cluster (with its training-operator stand-in): TrainJob and PyTorchJob runs of 2 ranks that
all_reduce, per-rank logs followed from before the pods exist, the pulled result and report()
metrics, a failing rank's traceback, refusals with nothing created, ownership, a Pending rank's
reason, and cancel deleting the job with its pods and ConfigMap.

The hub is a stand-in serving the two calls the service makes (token -> user, user -> server
state as KubeSpawner records it); everything on the Kubernetes side is the product's own code.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cloudpickle
import kubernetes.client
import pytest
import requests

from hubflow.hub.services import ACCESS_SCOPE, SUBMIT_SCOPE
from hubflow.hub.services import JOBS_SERVICE as SERVICE_NAME
from hubflow.hub.settings import DEFAULT_PROFILES
from hubflow.launcher.api import job_error
from hubflow.launcher.client import JobsAPIError, JobsClient
from hubflow.launcher.payload import cell_payload
from hubflow.profiles.source import profile_source
from tests.helpers.hubclient import free_port
from tests.kube.sim import NodeSpec, Simulator
from tests.kube.sim.nodes import gpu_node

NAMESPACE = "hubflow-users"
PREFIX = f"/services/{SERVICE_NAME}/"
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


class HubStandIn:
    """GET /hub/api/user (who a token belongs to), GET /hub/api/users/NAME (the server's
    state as KubeSpawner keeps it: pod, namespace, workspace PVC, hubflow's resolved profile)
    and GET /hub/api/users?state=active (every user's, for the GPU quotas)."""

    def __init__(self) -> None:
        self.service_token = secrets.token_hex(16)
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                token = self.headers.get("Authorization", "").partition(" ")[2]
                if self.path.startswith("/hub/api/user?") or self.path == "/hub/api/user":
                    name = hub.tokens.get(token)
                    body = hub.user_model(name) if name else None
                elif self.path.startswith("/hub/api/users?") and token == hub.service_token:
                    body = list(hub.users.values())  # users with active servers, one page
                elif self.path.startswith("/hub/api/users/") and token == hub.service_token:
                    body = hub.users.get(self.path.rsplit("/", 1)[1])
                else:
                    body = None
                self.send_response(200 if body else 403)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body or {"message": "no"}).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def user_model(self, name: str) -> dict[str, Any]:
        model = dict(self.users[name])
        model["scopes"] = [SUBMIT_SCOPE, ACCESS_SCOPE, f"read:users!user={name}"]
        return model

    def add_user(
        self,
        name: str,
        profile: str = "small-cpu",
        groups: tuple[str, ...] = (),
        admin: bool = False,
        kubespawner_override: dict[str, Any] | None = None,
    ) -> str:
        """A user whose default server runs `profile` (with a z2jh `kubespawner_override` as a
        profile may carry); returns a token of theirs."""
        catalog = profile_source([str(DEFAULT_PROFILES)]).current()
        resolved = catalog.resolve({"profile": profile}, list(groups), is_admin=admin).to_dict()
        resolved["kubespawner_override"] = kubespawner_override or {}
        state = {
            "pod_name": f"jupyter-{name}",
            "namespace": NAMESPACE,
            "pvc_name": f"workspace-{name}",
            "hubflow": {"profile": resolved},
        }
        self.users[name] = {
            "kind": "user",
            "name": name,
            "admin": admin,
            "groups": list(groups),
            "servers": {"": {"name": "", "ready": True, "state": state}},
        }
        token = secrets.token_hex(16)
        self.tokens[token] = name
        return token

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class JobsService:
    """`python -m hubflow.jobs --backend kubernetes` against the simulator."""

    def __init__(self, data_dir: Path, sim: Simulator, hub: HubStandIn, kubeflow_api: str):
        self.data_dir, self.port = data_dir, free_port()
        self.url = f"http://127.0.0.1:{self.port}{PREFIX}"
        command = [sys.executable, "-m", "hubflow.jobs"]
        env = {
            **os.environ,
            "HUBFLOW_DATA_DIR": str(data_dir),
            "HUBFLOW_JOBS_PORT": str(self.port),
            "HUBFLOW_PROFILES": str(DEFAULT_PROFILES),
            "HUBFLOW_MODE": "kubernetes",
            "HUBFLOW_NAMESPACE": NAMESPACE,
            "HUBFLOW_KUBEFLOW_API": kubeflow_api,
            "KUBECONFIG": str(sim.kubeconfig_path),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "JUPYTERHUB_API_URL": hub.url,
            "JUPYTERHUB_API_TOKEN": hub.service_token,
            "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
            "JUPYTERHUB_SERVICE_NAME": SERVICE_NAME,
        }
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(data_dir / "service.log", "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(self.url + "api/jobs", timeout=5)
                break
            except requests.ConnectionError:
                assert self.proc.poll() is None, self.log_text()
                assert time.monotonic() < deadline, self.log_text()
                time.sleep(0.2)

    def log_text(self) -> str:
        return (self.data_dir / "service.log").read_text(errors="replace")

    def client(self, token: str) -> JobsClient:
        return JobsClient(self.url, token)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def hub() -> Iterator[HubStandIn]:
    stand_in = HubStandIn()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def cluster(k8s_cluster: Simulator) -> Simulator:
    """The simulated cluster with the users' namespace and their workspace PVCs."""
    core = kubernetes.client.CoreV1Api(k8s_cluster.client())
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    for user in ("alice", "bob", "carol"):
        claim = {
            "metadata": {"name": f"workspace-{user}"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        core.create_namespaced_persistent_volume_claim(NAMESPACE, claim)
    return k8s_cluster


@pytest.fixture
def jobs_service(
    tmp_path: Path, cluster: Simulator, hub: HubStandIn
) -> Iterator[Callable[..., JobsService]]:
    """jobs_service(kubeflow_api, data_dir=None) -> a running jobs service in Kubernetes mode."""
    started: list[JobsService] = []

    def start(kubeflow_api: str = "auto", data_dir: Path | None = None) -> JobsService:
        data_dir = data_dir or tmp_path / f"jobs{len(started)}"
        service = JobsService(data_dir, cluster, hub, kubeflow_api)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


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


def job_objects(sim: Simulator, job_id: str) -> dict[str, list[str]]:
    """Names of the job's objects in the users' namespace, by kind."""
    found = {}
    for kind in ("trainjobs", "pytorchjobs", "tfjobs", "pods", "secrets"):
        names = [
            o["metadata"]["name"]
            for o in sim.objects(kind, NAMESPACE)
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
    cluster: Simulator,
    hub: HubStandIn,
    kubeflow_api: str,
    kind: str,
    plural: str,
) -> None:
    service = jobs_service(kubeflow_api)
    alice = service.client(hub.add_user("alice"))
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
    (resource,) = cluster.objects(plural, NAMESPACE)
    assert resource["kind"] == kind
    assert resource["metadata"]["labels"]["hubflow.io/user"] == "alice"
    assert resource["metadata"]["annotations"]["hubflow.io/user"] == "alice"
    suspended = resource["spec"].get(
        "suspend", resource["spec"].get("runPolicy", {}).get("suspend")
    )
    assert suspended is False
    (secret,) = job_objects(cluster, job_id)["secrets"]
    owner = cluster.get("secrets", NAMESPACE, secret)["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == (kind, resource["metadata"]["uid"])
    pods = [cluster.get("pods", NAMESPACE, name) for name in job_objects(cluster, job_id)["pods"]]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == "hubflow-job"
        container = pod["spec"]["containers"][0]
        assert container["image"] == "hubflow/jupyterlab:latest"
        assert container["resources"]["limits"] == {"cpu": "1", "memory": "2000000000"}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/home/jovyan"] == "workspace"
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == ["workspace-alice"]
    account = cluster.get("serviceaccounts", NAMESPACE, "hubflow-job")
    assert account["automountServiceAccountToken"] is False


def test_a_failing_rank_fails_the_job_with_its_traceback(
    jobs_service: Callable[[str], JobsService], cluster: Simulator, hub: HubStandIn
) -> None:
    service = jobs_service("v1")
    alice = service.client(hub.add_user("alice"))
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
        lambda: all(p["status"]["phase"] != "Running" for p in cluster.objects("pods", NAMESPACE)),
        "rank 0 to be stopped",
    )


def test_refusals_leave_nothing_behind(
    jobs_service: Callable[[str], JobsService], cluster: Simulator, hub: HubStandIn
) -> None:
    service = jobs_service("auto")
    bob = service.client(hub.add_user("bob"))
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
    for kind in ("trainjobs", "pytorchjobs", "tfjobs", "pods", "secrets"):
        assert cluster.objects(kind, NAMESPACE) == [], kind
    assert not any((service.data_dir / "jobs").glob("*"))


@pytest.mark.parametrize("k8s_options", [{"crds": [], "preload": []}])
def test_a_cluster_without_kubeflow_refuses_at_submit(
    jobs_service: Callable[[str], JobsService], cluster: Simulator, hub: HubStandIn
) -> None:
    service = jobs_service("auto")
    bob = service.client(hub.add_user("bob"))
    with pytest.raises(JobsAPIError) as refused:
        bob.submit(cell_payload("x = 1", {}).dumps(), workers=1)
    assert (refused.value.status, refused.value.field) == (503, "framework")
    assert "serves neither trainer.kubeflow.org/v1alpha1 TrainJob" in str(refused.value)
    assert "nor kubeflow.org/v1 PyTorchJob" in str(refused.value)
    assert bob.list() == [] and cluster.objects("secrets", NAMESPACE) == []


def test_another_user_can_neither_see_nor_cancel_a_job(
    jobs_service: Callable[[str], JobsService], cluster: Simulator, hub: HubStandIn
) -> None:
    service = jobs_service("auto")
    alice = service.client(hub.add_user("alice"))
    bob = service.client(hub.add_user("bob"))
    admin = service.client(hub.add_user("carol", admin=True))
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
    assert len(cluster.objects("trainjobs", NAMESPACE)) == 1
    alice.cancel(job_id)


@pytest.mark.parametrize("k8s_nodes", [[NodeSpec("sim-cpu-1"), gpu_node("sim-gpu-1", count=1)]])
def test_a_pending_rank_shows_why_and_cancel_deletes_job_pods_and_secret(
    jobs_service: Callable[[str], JobsService], cluster: Simulator, hub: HubStandIn
) -> None:
    service = jobs_service("auto")
    carol = service.client(hub.add_user("carol", profile="gpu-1", groups=("gpu-users",)))
    code = "import time\nprint('rank up', flush=True)\ntime.sleep(120)\n"
    job_id = carol.submit(
        cell_payload(code, {}).dumps(), workers=2, gpus_per_worker=1, framework="python"
    )["id"]

    def pending_reason() -> str:
        reason = str(carol.get(job_id)["reason"])
        return reason if "rank 1:" in reason else ""

    reason = wait_for(pending_reason, "rank 1's scheduling failure", timeout=120)
    assert "rank 1: 0/2 nodes are available: " in reason
    assert "Insufficient nvidia.com/gpu" in reason
    (trainjob,) = cluster.objects("trainjobs", NAMESPACE)
    pods = [p for p in cluster.objects("pods", NAMESPACE)]
    assert all(
        p["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
        for p in pods
    )
    assert all(
        p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1" for p in pods
    )
    assert set(job_objects(cluster, job_id)) == {"trainjobs", "pods", "secrets"}
    model = carol.cancel(job_id)
    assert model["state"] == "Cancelled"
    wait_for(lambda: not job_objects(cluster, job_id), "the job's objects to be deleted")


def test_a_tensorflow_job_runs_as_a_tfjob_whose_ranks_come_from_tf_config(
    jobs_service: Callable[[str], JobsService], cluster: Simulator, hub: HubStandIn
) -> None:
    service = jobs_service("auto")
    alice = service.client(hub.add_user("alice"))
    code = (
        "import json, os\n"
        "task = json.loads(os.environ['TF_CONFIG'])['task']\n"
        "print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], 'task', task['index'])\n"
        "int(os.environ['RANK'])\n"
    )
    job_id = alice.submit(cell_payload(code, {}).dumps(), workers=2, framework="tensorflow")["id"]
    model = wait_state(alice, job_id, ("Succeeded", "Failed"))
    assert model["state"] == "Succeeded", (model, service.log_text())
    (tfjob,) = cluster.objects("tfjobs", NAMESPACE)
    assert tfjob["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 2
    lines = {(line.rank, line.line) for line in alice.logs(job_id)}
    assert lines == {(0, "rank 0 of 2 task 0"), (1, "rank 1 of 2 task 1")}
    assert cloudpickle.loads(alice.result(job_id)) == {"value": 0, "variables": {}}


def test_a_queued_profile_leaves_the_job_suspended_until_kueue_admits_it(
    jobs_service: Callable[[str], JobsService], cluster: Simulator, hub: HubStandIn
) -> None:
    service = jobs_service("v1")
    override = {
        "extra_labels": {"kueue.x-k8s.io/queue-name": "team-a"},
        "priority_class_name": "research",
    }
    alice = service.client(hub.add_user("alice", kubespawner_override=override))
    code = "print('admitted')\n"
    job_id = alice.submit(cell_payload(code, {}).dumps(), workers=2, framework="python")["id"]
    reason = "suspended: waiting for Kueue to admit it from queue 'team-a'"
    wait_for(lambda: alice.get(job_id)["reason"] == reason, "the Kueue wait to show")
    (job,) = cluster.objects("pytorchjobs", NAMESPACE)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["spec"]["runPolicy"]["suspend"] is True
    assert job["spec"]["runPolicy"]["schedulingPolicy"] == {
        "queue": "team-a",
        "priorityClass": "research",
    }
    assert cluster.objects("pods", NAMESPACE) == []
    assert alice.get(job_id)["state"] == "Pending"
    # Kueue admits the workload by unsuspending it.
    kubernetes.client.CustomObjectsApi(cluster.client()).patch_namespaced_custom_object(
        "kubeflow.org", "v1", NAMESPACE, "pytorchjobs", job["metadata"]["name"],
        {"spec": {"runPolicy": {"suspend": False}}},
    )  # fmt: skip
    model = wait_state(alice, job_id, ("Succeeded", "Failed"))
    assert model["state"] == "Succeeded", model
    assert {line.line for line in alice.logs(job_id)} == {"admitted"}
    pods = cluster.objects("pods", NAMESPACE)
    assert {p["spec"]["priorityClassName"] for p in pods} == {"research"}


def test_a_restarted_service_follows_its_running_job_to_the_end(
    jobs_service: Callable[..., JobsService], cluster: Simulator, hub: HubStandIn
) -> None:
    first = jobs_service("auto")
    token = hub.add_user("alice")
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
    wait_for(lambda: any(line.line == "before" for line in alice.logs(job_id)), "'before'")
    first.stop()
    second = jobs_service("auto", data_dir=first.data_dir)
    alice = second.client(token)
    assert alice.get(job_id)["state"] == "Running"
    claim = cluster.get("persistentvolumeclaims", NAMESPACE, "workspace-alice")
    (cluster.data_dir / "volumes" / claim["spec"]["volumeName"] / "go").write_text("")
    lines = [line.line for line in alice.logs(job_id, follow=True)]
    assert lines == ["before", "after"]
    model = wait_state(alice, job_id, ("Succeeded", "Failed"))
    assert model["state"] == "Succeeded", model
    assert cloudpickle.loads(alice.result(job_id))["value"] == "done"
