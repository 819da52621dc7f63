"""A hub in Kubernetes mode under API faults, on the real cluster: its API server is reached
through the fault proxy (tests/kube/cluster/faultproxy.py), which answers 429 with Retry-After,
500 or 409, answers slowly, and cuts or expires watches. Transient errors are retried, hard ones
(the real API server's own refusal) fail the spawn with its words, watches recover, and no pod is
left behind."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.hubclient import HubClient, HubProcess
from tests.kube.cluster.faultproxy import FaultProxy
from tests.kube.cluster.fixtures import Namespace
from tests.kube.test_kube_hub import failed_spawn, user_pods


@pytest.fixture
def faults(kube_ns: Namespace, tmp_path: Path) -> Iterator[FaultProxy]:
    """The fault proxy in front of the API server, with the hub's ServiceAccount token."""
    with FaultProxy(kube_ns.hub_kubeconfig, tmp_path) as proxy:
        yield proxy


@pytest.fixture
def faulty_hub(faults: FaultProxy, kube_hub_factory: Callable[..., HubProcess]) -> HubProcess:
    """A hub in Kubernetes mode that reaches the API server through the fault proxy."""
    return kube_hub_factory(kubeconfig=faults.kubeconfig_path)


def test_overloaded_api_server_answers_are_retried(
    faulty_hub: HubProcess, faults: FaultProxy, kube_ns: Namespace
) -> None:
    too_many = faults.inject("create", "pods", status=429, retry_after=1, times=2)
    broken = faults.inject("create", "persistentvolumeclaims", status=500, times=1)
    alice = HubClient(faulty_hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})

    assert (too_many.hits, broken.hits) == (2, 1)
    assert len(user_pods(kube_ns)) == 1
    assert "create pod jupyter-alice: 429 Too Many Requests" in faulty_hub.log()
    assert "trying again in 1s" in faulty_hub.log()


def test_a_conflict_on_create_is_resolved_without_a_second_pod(
    faulty_hub: HubProcess, faults: FaultProxy, kube_ns: Namespace
) -> None:
    conflict = faults.inject("create", "pods", status=409, times=1)
    alice = HubClient(faulty_hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})

    assert conflict.hits == 1
    assert len(user_pods(kube_ns)) == 1


def test_slow_answers_leave_exactly_one_pod(
    faulty_hub: HubProcess, faults: FaultProxy, kube_ns: Namespace
) -> None:
    # Longer than KubeSpawner's request timeout (3 s): it gives up waiting, the API server has
    # created the pod anyway, and the next try meets the real 409 that it must resolve without a
    # second pod.
    slow = faults.inject("create", "pods", delay=5, times=1)
    alice = HubClient(faulty_hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})

    assert slow.hits == 1
    assert "Found existing pod jupyter-alice" in faulty_hub.log(), "no conflict was met"
    assert len(user_pods(kube_ns)) == 1


def test_a_refused_pod_fails_the_spawn_with_the_api_servers_words(
    kube_hub: HubProcess, kube_ns: Namespace
) -> None:
    # The real API server refuses the pod: a ResourceQuota (the admin's) allows no pods here.
    quota = {"apiVersion": "v1", "kind": "ResourceQuota",
             "metadata": {"name": "no-pods", "namespace": kube_ns.name}, "spec": {"hard": {"pods": "0"}}}  # fmt: skip
    cp = kube_ns.cluster.cp
    cp.kubectl("apply", "-f", "-", input=json.dumps(quota))
    kube_ns.cluster.wait_for(
        lambda: (
            (kube_ns.cluster.get("resourcequotas", kube_ns.name, "no-pods") or {})
            .get("status", {})
            .get("hard")
        )
    )
    alice = HubClient(kube_hub, "alice").login()
    message, _ = failed_spawn(alice, {"profile": "small-cpu"})

    assert "Your server could not start: Kubernetes refused it (403 Forbidden" in message
    assert "exceeded quota: no-pods" in message, "the API server's own words are kept"
    assert user_pods(kube_ns) == []
    # Nothing is stuck: once the quota goes, the next spawn works.
    cp.kubectl("delete", "resourcequota", "no-pods", "-n", kube_ns.name)
    alice.spawn({"profile": "small-cpu"})
    assert len(user_pods(kube_ns)) == 1


def test_watches_recover_from_cuts_and_expired_versions(
    faulty_hub: HubProcess, faults: FaultProxy, kube_ns: Namespace
) -> None:
    alice = HubClient(faulty_hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})
    # The open watches are cut, the next ones too; the events' next two are told their version
    # expired (410), as the API server says after compaction.
    assert faults.cut_watches("pods") >= 1, "the hub had no open watch of pods"
    assert faults.cut_watches("events") >= 1, "the hub had no open watch of events"
    cut = faults.inject("watch", "pods", cut_after=0, times=3)
    gone = faults.inject("watch", "events", gone=True, times=2)
    deadline = time.monotonic() + 60
    while (cut.hits, gone.hits) != (3, 2):
        assert time.monotonic() < deadline, f"the hub stopped watching: {cut.hits}, {gone.hits}"
        time.sleep(0.5)

    # The pod reflector sees the pod go (stop waits for that) and the next one come.
    alice.stop_server()
    assert user_pods(kube_ns) == []
    assert alice.post_spawn({"profile": "small-cpu"}).status_code == 302
    messages = alice.spawn_progress()["messages"]
    alice.wait_ready()
    assert "Started your server; waiting for it to answer" in messages, "events were not seen"
