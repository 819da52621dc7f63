"""A whole hub in Kubernetes mode on the real test cluster (as the chart's ServiceAccount): users
log in, spawn from the spawn page, and reach their pods through the hub's proxy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes.client import CoreV1Api

from tests.helpers.hubclient import HubClient, HubProcess, page_error
from tests.kube.cluster.fixtures import Namespace, RealCluster
from tests.kube.cluster.hub_fixtures import START_TIMEOUT


def user_pods(ns: Namespace) -> list[dict[str, Any]]:
    """The users' server pods in the test's namespace (those not being deleted)."""
    return [
        pod
        for pod in ns.cluster.objects("pods", ns.name)
        if pod["metadata"].get("labels", {}).get("component") == "singleuser-server"
        and not pod["metadata"].get("deletionTimestamp")
    ]


def gpus_held(cluster: RealCluster) -> int:
    """GPUs that pods of any namespace hold (earlier tests' pods may still be going)."""
    return sum(
        int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
        for pod in cluster.objects("pods")
        if pod["status"].get("phase") not in ("Succeeded", "Failed")
        for c in pod["spec"]["containers"]
    )


def wait_for_free_gpus(cluster: RealCluster) -> None:
    """Wait until no pod holds a GPU (those of earlier tests' namespaces are deleted after them)."""
    cluster.wait_for(lambda: gpus_held(cluster) == 0, timeout=90, interval=0.5)


def write_file(client: HubClient, name: str, text: str) -> None:
    token = {"Authorization": f"token {client.new_token()}"}
    r = client.put(
        client.server_url() + f"api/contents/{name}",
        json={"type": "file", "format": "text", "content": text},
        headers=token,
    )
    assert r.status_code in (200, 201), r.text


def read_file(client: HubClient, name: str) -> str:
    token = {"Authorization": f"token {client.new_token()}"}
    r = client.get(client.server_url() + f"api/contents/{name}", headers=token)
    r.raise_for_status()
    return str(r.json()["content"])


def test_gpu_server_is_a_pod_on_the_gpu_node_reached_through_the_proxy(
    kube_hub: HubProcess, kube_ns: Namespace
) -> None:
    wait_for_free_gpus(kube_ns.cluster)
    alice = HubClient(kube_hub, "alice").login()
    assert alice.post_spawn({"profile": "gpu-1"}).status_code == 302
    messages = alice.spawn_progress()["messages"]
    alice.wait_ready()

    # Progress in plain words, from the scheduler's and the node agent's (the kubelet's) events.
    assert "Found a node to run your server on: gpu-a100-1" in messages
    assert "Downloading the image hubflow/jupyterlab-cuda:latest" in messages
    assert "Started your server; waiting for it to answer" in messages
    [pod] = user_pods(kube_ns)
    assert pod["spec"]["nodeName"] == "gpu-a100-1"
    container = pod["spec"]["containers"][0]
    assert container["image"] == "hubflow/jupyterlab-cuda:latest"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["automountServiceAccountToken"] is False
    # Its own address on the cluster's bridge; it calls the hub and the jobs service at the
    # bridge's host address.
    host = kube_ns.cluster.cp.net.host_ip
    assert pod["status"]["podIP"].startswith(host.rsplit(".", 2)[0] + ".")
    assert pod["status"]["podIP"] != host
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["HUBFLOW_JOBS_URL"] == f"http://{host}:{kube_hub.jobs_port}/services/hubflow-jobs/"
    assert env["JUPYTERHUB_API_URL"] == f"http://{host}:{kube_hub.hub_port}/hub/api"

    # Through the proxy: the server answers the user, and its workspace is the PVC.
    write_file(alice, "notes.txt", "kept across restarts")
    claim = kube_ns.cluster.get("persistentvolumeclaims", kube_ns.name, "workspace-alice")
    assert claim is not None and claim["status"]["phase"] == "Bound"

    alice.stop_server()
    assert user_pods(kube_ns) == []
    assert (
        kube_ns.cluster.get("persistentvolumeclaims", kube_ns.name, "workspace-alice") is not None
    )

    # The next start, with another profile, finds the workspace as it was left.
    alice.spawn({"profile": "small-cpu"})
    [pod] = user_pods(kube_ns)
    assert pod["spec"]["nodeName"] in ("cpu-1", "cpu-2")
    assert read_file(alice, "notes.txt") == "kept across restarts"


def test_a_restarted_hub_finds_its_running_pods(
    kube_hub_factory: Callable[..., HubProcess], kube_ns: Namespace
) -> None:
    hub = kube_hub_factory()
    alice = HubClient(hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})
    [before] = user_pods(kube_ns)

    hub.stop()
    hub.start(wait=False).wait_ready(timeout=START_TIMEOUT)

    alice = HubClient(hub, "alice").login()
    model = alice.server()
    assert model is not None and model["ready"], "the restarted hub lost alice's server"
    [after] = user_pods(kube_ns)
    assert after["metadata"]["uid"] == before["metadata"]["uid"], "the pod was replaced"
    token = {"Authorization": f"token {alice.new_token()}"}
    assert alice.get(alice.server_url() + "api/status", headers=token).status_code == 200


def hold_all_gpus(ns: Namespace) -> None:
    """A pod (the admin's) that takes every GPU of the GPU node."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gpu-hog"},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "containers": [
                {
                    "name": "hog",
                    "image": "busybox",
                    "command": ["sleep", "600"],
                    "resources": {"limits": {"nvidia.com/gpu": "4"}},
                }
            ],
        },
    }
    cluster = ns.cluster
    wait_for_free_gpus(cluster)
    CoreV1Api(cluster.client()).create_namespaced_pod(ns.name, pod)
    cluster.wait_for(
        lambda: (cluster.get("pods", ns.name, "gpu-hog") or {})["spec"].get("nodeName")
    )


def failed_spawn(client: HubClient, form: dict[str, str]) -> tuple[str, float]:
    """Post the spawn form and follow its progress to the end: (the failure's message, seconds).
    A spawn that fails at once is answered on the spawn page itself."""
    started = time.monotonic()
    r = client.post_spawn(form)
    if r.status_code != 302:
        return page_error(r.text), time.monotonic() - started
    progress = client.spawn_progress()
    assert progress.get("failed"), f"the spawn did not fail: {progress}"
    return str(progress["message"]), time.monotonic() - started


def test_no_free_gpu_fails_the_spawn_early_with_the_schedulers_reason(
    kube_hub: HubProcess, kube_ns: Namespace
) -> None:
    hold_all_gpus(kube_ns)
    alice = HubClient(kube_hub, "alice").login()
    message, seconds = failed_spawn(alice, {"profile": "gpu-1"})

    assert "Your server could not start: no node can run it now" in message
    assert "not enough free GPUs (nvidia.com/gpu)" in message
    assert "Insufficient nvidia.com/gpu" in message, "the scheduler's own words are kept"
    assert seconds < 60, f"took {seconds:.0f}s: the spawn waited for its start timeout"
    deadline = time.monotonic() + 30
    while user_pods(kube_ns) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert user_pods(kube_ns) == [], "the unschedulable pod was left behind"
    assert alice.server() is None


def test_an_image_that_cannot_be_pulled_fails_the_spawn_early(
    kube_hub: HubProcess, kube_ns: Namespace
) -> None:
    alice = HubClient(kube_hub, "alice").login()
    form = {
        "profile": "small-cpu",
        "profile-option-small-cpu--image-version--unlisted-choice": "doesnotexist",
    }
    message, seconds = failed_spawn(alice, form)

    assert "its image hubflow/jupyterlab:doesnotexist cannot be downloaded" in message
    assert seconds < 60
    assert alice.server() is None


def test_names_that_differ_only_in_escaped_characters_get_their_own_pods_and_volumes(
    kube_hub: HubProcess, kube_ns: Namespace
) -> None:
    admin = HubClient(kube_hub, "admin").login()
    names = ["ml.eng", "ml-eng", "ml_eng"]
    for name in names:
        assert admin.api("POST", f"users/{name}").status_code == 201
        r = admin.api("POST", f"users/{name}/server", json={"profile": "small-cpu"})
        assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 180
    for name in names:
        while not admin.api("GET", f"users/{name}").json()["servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline, f"{name}'s server did not start"
            time.sleep(0.5)

    pods = {
        pod["metadata"]["annotations"]["hub.jupyter.org/username"]: pod
        for pod in user_pods(kube_ns)
    }
    assert sorted(pods) == sorted(names)
    pod_names = {pod["metadata"]["name"] for pod in pods.values()}
    claims = {
        volume["persistentVolumeClaim"]["claimName"]
        for pod in pods.values()
        for volume in pod["spec"]["volumes"]
        if volume["name"] == "workspace"
    }
    assert len(pod_names) == len(claims) == 3, (pod_names, claims)
    for claim in claims:
        assert kube_ns.cluster.get("persistentvolumeclaims", kube_ns.name, claim) is not None
    token = {"Authorization": f"token {admin.new_token()}"}
    for name in names:
        r = admin.get(f"{kube_hub.url}/user/{name}/api/status", headers=token)
        assert r.status_code == 200, f"{name}: {r.status_code}"
