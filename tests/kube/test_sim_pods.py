"""Scheduler and kubelet stand-ins: pods really run, on their own 127.0.0.N, with real wording."""

from __future__ import annotations

import os
import sys
import time
import urllib.request

import pytest
from kubernetes import client, watch

from tests.kube.sim import Simulator

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pod(name: str, command: list[str], **spec: object) -> dict:
    container = {"name": "main", "image": "python:3.11", "command": command}
    container.update(spec.pop("container", {}))  # type: ignore[arg-type]
    return {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}


def phase(sim: Simulator, name: str, wanted: str, timeout: float = 30) -> dict:
    return sim.wait_for(
        lambda: (
            (p := sim.get("pods", "default", name)) and p["status"].get("phase") == wanted and p
        ),
        timeout,
    )


def reasons(sim: Simulator, name: str) -> list[str]:
    return [e["reason"] for e in sim.events_for(name)]


def test_http_server_answers_on_its_pod_ip(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    for name in ("web1", "web2"):  # same port, different pod IPs
        v1.create_namespaced_pod("default", pod(name, ["python", "-m", "http.server", "8000"]))
    ips = set()
    for name in ("web1", "web2"):
        ip = phase(k8s_cluster, name, "Running")["status"]["podIP"]
        assert ip.startswith("127.0.0.") and ip != "127.0.0.1"
        ips.add(ip)
        k8s_cluster.wait_for(lambda ip=ip: _get(f"http://{ip}:8000/") == 200, 15)
    assert len(ips) == 2
    status = v1.read_namespaced_pod("web1", "default").status
    assert [c.type for c in status.conditions if c.status == "True"] == [
        "PodScheduled",
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ]
    assert (
        status.container_statuses[0].ready and status.container_statuses[0].state.running.started_at
    )
    assert reasons(k8s_cluster, "web1") == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return 0


def test_gpu_pod_without_toleration_gets_failed_scheduling(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    gpu = {"resources": {"limits": {"nvidia.com/gpu": "1"}}}
    v1.create_namespaced_pod("default", pod("gpu", ["sleep", "30"], container=gpu))
    event = k8s_cluster.wait_for(
        lambda: [e for e in k8s_cluster.events_for("gpu") if e["reason"] == "FailedScheduling"]
    )[0]
    assert event["type"] == "Warning" and event["source"]["component"] == "default-scheduler"
    assert event["message"] == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}, 2 Insufficient nvidia.com/gpu. "
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    )
    status = v1.read_namespaced_pod("gpu", "default").status
    assert status.phase == "Pending"
    scheduled = next(c for c in status.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason, scheduled.message) == (
        "False",
        "Unschedulable",
        event["message"],
    )


def test_gpu_pods_fit_by_count_and_wait_for_capacity(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    selector = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    four = {"resources": {"limits": {"nvidia.com/gpu": "4"}}}
    one = {"resources": {"limits": {"nvidia.com/gpu": "1"}}}
    v1.create_namespaced_pod(
        "default",
        pod(
            "big",
            ["sleep", "60"],
            container=four,
            tolerations=[GPU_TOLERATION],
            nodeSelector=selector,
        ),
    )
    assert phase(k8s_cluster, "big", "Running")["spec"]["nodeName"] == "sim-gpu-1"
    v1.create_namespaced_pod(
        "default", pod("small", ["sleep", "60"], container=one, tolerations=[GPU_TOLERATION])
    )
    event = k8s_cluster.wait_for(
        lambda: [e for e in k8s_cluster.events_for("small") if e["reason"] == "FailedScheduling"]
    )[0]
    assert event["message"] == (
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. "
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    )
    v1.delete_namespaced_pod("big", "default", grace_period_seconds=1)
    assert phase(k8s_cluster, "small", "Running")["spec"]["nodeName"] == "sim-gpu-1"


def test_node_affinity_and_missing_claim_wording(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    term = {
        "matchExpressions": [
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}
        ]
    }
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }
    v1.create_namespaced_pod(
        "default", pod("h100", ["sleep", "1"], affinity=affinity, tolerations=[GPU_TOLERATION])
    )
    volumes = [{"name": "w", "persistentVolumeClaim": {"claimName": "nope"}}]
    v1.create_namespaced_pod("default", pod("noclaim", ["sleep", "1"], volumes=volumes))
    messages = k8s_cluster.wait_for(
        lambda: (
            {
                e["involvedObject"]["name"]: e["message"]
                for e in k8s_cluster.objects("events")
                if e["reason"] == "FailedScheduling"
            }
            if len(k8s_cluster.objects("events")) >= 2
            else None
        )
    )
    assert messages["h100"] == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    assert messages["noclaim"] == (
        '0/3 nodes are available: persistentvolumeclaim "nope" not found. '
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )


def test_pvc_directory_outlives_its_pod(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    claim = v1.create_namespaced_persistent_volume_claim(
        "default",
        {
            "metadata": {"name": "home"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    assert claim.status.phase == "Bound" and claim.spec.volume_name
    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}]
    mounts = {
        "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan/work"}],
        "workingDir": "/home/jovyan/work",
    }
    write = ["sh", "-c", "echo kept > /home/jovyan/work/notes.txt && echo $NOTEBOOK_DIR && pwd"]
    env = {**mounts, "env": [{"name": "NOTEBOOK_DIR", "value": "/home/jovyan/work"}]}
    v1.create_namespaced_pod(
        "default", pod("writer", write, container=env, volumes=volumes, restartPolicy="Never")
    )
    phase(k8s_cluster, "writer", "Succeeded")
    local = v1.read_namespaced_pod_log("writer", "default").split()
    assert local[0] == local[1] and local[0].endswith(claim.spec.volume_name)
    v1.delete_namespaced_pod("writer", "default")
    v1.create_namespaced_pod(
        "default",
        pod(
            "reader", ["cat", "notes.txt"], container=mounts, volumes=volumes, restartPolicy="Never"
        ),
    )
    phase(k8s_cluster, "reader", "Succeeded")
    assert v1.read_namespaced_pod_log("reader", "default") == "kept\n"


def test_env_from_fields_secrets_and_config_maps(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_secret(
        "default", {"metadata": {"name": "s"}, "stringData": {"token": "t0k"}}
    )
    v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "c"}, "data": {"MODE": "fast", "LEVEL": "3"}}
    )
    env = [
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
        {"name": "GREETING", "value": "hello $(NAME)"},
    ]
    container = {"env": env, "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "CFG_"}]}
    script = "import os; print(*(os.environ[k] for k in ['IP', 'NAME', 'NODE', 'TOKEN', 'GREETING', 'CFG_MODE', 'CFG_LEVEL']), sep='|')"
    v1.create_namespaced_pod(
        "default", pod("envy", ["python", "-c", script], container=container, restartPolicy="Never")
    )
    done = phase(k8s_cluster, "envy", "Succeeded")
    ip, name, node, token, greeting, mode, level = (
        v1.read_namespaced_pod_log("envy", "default").strip().split("|")
    )
    assert (ip, name, node) == (done["status"]["podIP"], "envy", done["spec"]["nodeName"])
    assert (token, greeting, mode, level) == ("t0k", "hello envy", "fast", "3")


def test_exit_codes_decide_phase_and_container_state(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_pod("default", pod("ok", ["true"], restartPolicy="Never"))
    v1.create_namespaced_pod("default", pod("bad", ["sh", "-c", "exit 3"], restartPolicy="Never"))
    ok = phase(k8s_cluster, "ok", "Succeeded")["status"]
    bad = phase(k8s_cluster, "bad", "Failed")["status"]
    assert ok["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    terminated = bad["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert next(c for c in ok["conditions"] if c["type"] == "Ready")["reason"] == "PodCompleted"


def test_on_failure_restarts_with_back_off(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_pod(
        "default", pod("crash", ["sh", "-c", "echo boom; exit 1"], restartPolicy="OnFailure")
    )
    status = k8s_cluster.wait_for(
        lambda: (
            (p := k8s_cluster.get("pods", "default", "crash"))
            and p["status"].get("containerStatuses", [{}])[0].get("restartCount", 0) >= 2
            and p["status"]
        )
    )
    assert status["phase"] == "Running"
    assert status["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    assert "BackOff" in reasons(k8s_cluster, "crash")


def test_missing_image_backs_off(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_pod(
        "default", pod("noimg", ["true"], container={"image": "registry.example/doesnotexist:1"})
    )
    k8s_cluster.wait_for(lambda: "BackOff" in reasons(k8s_cluster, "noimg"))
    status = v1.read_namespaced_pod("noimg", "default").status
    assert status.phase == "Pending"
    assert status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
    messages = [e["message"] for e in k8s_cluster.events_for("noimg")]
    assert "Error: ErrImagePull" in messages and "Error: ImagePullBackOff" in messages


def test_container_without_command_fails_clearly(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "entry"},
            "spec": {"containers": [{"name": "main", "image": "jupyter/base"}]},
        },
    )
    k8s_cluster.wait_for(lambda: "Failed" in reasons(k8s_cluster, "entry"))
    waiting = v1.read_namespaced_pod("entry", "default").status.container_statuses[0].state.waiting
    assert waiting.reason == "CreateContainerError" and "neither" in waiting.message


def test_unknown_executable_is_a_start_error(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_pod(
        "default", pod("nocmd", ["no-such-binary-here"], restartPolicy="Never")
    )
    terminated = phase(k8s_cluster, "nocmd", "Failed")["status"]["containerStatuses"][0]["state"][
        "terminated"
    ]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")


def test_logs_tail_and_follow(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    script = "import time\nfor i in range(5):\n    print(i, flush=True); time.sleep(0.2)"
    v1.create_namespaced_pod(
        "default", pod("counter", ["python", "-c", script], restartPolicy="Never")
    )
    phase(k8s_cluster, "counter", "Running")
    followed = list(
        watch.Watch().stream(v1.read_namespaced_pod_log, "counter", "default", follow=True)
    )
    assert followed == ["0", "1", "2", "3", "4"]
    assert v1.read_namespaced_pod_log("counter", "default", tail_lines=2) == "3\n4\n"
    assert v1.read_namespaced_pod_log(
        "counter", "default", container="main", since_seconds=3600
    ).startswith("0\n")


def test_deleting_a_pod_stops_its_process(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(600)"
    v1.create_namespaced_pod(
        "default",
        pod("stubborn", [sys.executable, "-c", stubborn], terminationGracePeriodSeconds=1),
    )
    phase(k8s_cluster, "stubborn", "Running")
    k8s_cluster.wait_for(lambda: "up" in k8s_cluster.pod_log("default", "stubborn"))
    [pid] = k8s_cluster.pod_processes()
    deleted = v1.delete_namespaced_pod("stubborn", "default")
    assert deleted.metadata.deletion_timestamp  # graceful: Terminating first
    start = time.monotonic()
    k8s_cluster.wait_for(lambda: not k8s_cluster.objects("pods"), 15)
    assert time.monotonic() - start >= 0.9  # it ignored SIGTERM, so it took the grace period
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "Killing" in reasons(k8s_cluster, "stubborn")


def test_init_containers_run_first(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    volumes = [{"name": "shared", "emptyDir": {}}]
    mount = {"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
    init = [
        {
            "name": "prepare",
            "image": "busybox",
            "command": ["sh", "-c", "echo ready > /shared/flag"],
            **mount,
        }
    ]
    spec = pod(
        "inits",
        ["cat", "/shared/flag"],
        container=mount,
        volumes=volumes,
        initContainers=init,
        restartPolicy="Never",
    )
    v1.create_namespaced_pod("default", spec)
    done = phase(k8s_cluster, "inits", "Succeeded")["status"]
    assert done["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert v1.read_namespaced_pod_log("inits", "default") == "ready\n"
