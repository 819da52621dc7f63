"""A hub in Kubernetes mode under API faults: transient errors are retried, hard ones fail the
spawn with the API server's words, watches recover, and no pod is left behind."""

from __future__ import annotations

import time

from tests.helpers.hubclient import HubClient, HubProcess
from tests.kube.sim import Simulator
from tests.kube.test_kube_hub import failed_spawn, user_pods


def test_overloaded_api_server_answers_are_retried(
    kube_hub: HubProcess, k8s_cluster: Simulator
) -> None:
    too_many = k8s_cluster.inject("create", "pods", status=429, retry_after=1, times=2)
    broken = k8s_cluster.inject("create", "persistentvolumeclaims", status=500, times=1)
    alice = HubClient(kube_hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})

    assert (too_many.hits, broken.hits) == (2, 1)
    assert len(user_pods(k8s_cluster)) == 1
    assert "create pod jupyter-alice: 429 Too Many Requests" in kube_hub.log()
    assert "trying again in 1s" in kube_hub.log()


def test_a_conflict_on_create_is_resolved_without_a_second_pod(
    kube_hub: HubProcess, k8s_cluster: Simulator
) -> None:
    conflict = k8s_cluster.inject("create", "pods", status=409, times=1)
    alice = HubClient(kube_hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})

    assert conflict.hits == 1
    assert len(user_pods(k8s_cluster)) == 1


def test_slow_answers_leave_exactly_one_pod(kube_hub: HubProcess, k8s_cluster: Simulator) -> None:
    # Longer than KubeSpawner's request timeout (3 s): it gives up waiting, the pod is created
    # anyway, and the next try meets a conflict that it must resolve without a second pod.
    slow = k8s_cluster.inject("create", "pods", delay=5, times=1)
    alice = HubClient(kube_hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})

    assert slow.hits == 1
    assert len(user_pods(k8s_cluster)) == 1


def test_a_refused_pod_fails_the_spawn_with_the_api_servers_words(
    kube_hub: HubProcess, k8s_cluster: Simulator
) -> None:
    k8s_cluster.inject("create", "pods", status=403, times=1)
    alice = HubClient(kube_hub, "alice").login()
    message, _ = failed_spawn(alice, {"profile": "small-cpu"})

    assert "Your server could not start: Kubernetes refused it (403 Forbidden" in message
    assert user_pods(k8s_cluster) == []
    # Nothing is stuck: the next spawn works.
    alice.spawn({"profile": "small-cpu"})
    assert len(user_pods(k8s_cluster)) == 1


def test_watches_recover_from_cuts_and_expired_versions(
    kube_hub: HubProcess, k8s_cluster: Simulator
) -> None:
    alice = HubClient(kube_hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})
    cut = k8s_cluster.inject("watch", "pods", cut_after=0, times=3)
    gone = k8s_cluster.inject("watch", "events", gone=True, times=2)
    deadline = time.monotonic() + 60
    while (cut.hits, gone.hits) != (3, 2):
        assert time.monotonic() < deadline, f"the hub stopped watching: {cut.hits}, {gone.hits}"
        time.sleep(0.5)

    # The pod reflector sees the pod go (stop waits for that) and the next one come.
    alice.stop_server()
    assert user_pods(k8s_cluster) == []
    assert alice.post_spawn({"profile": "small-cpu"}).status_code == 302
    messages = alice.spawn_progress()["messages"]
    alice.wait_ready()
    assert "Started your server; waiting for it to answer" in messages, "events were not seen"
