"""The hub's memory for pod events stays bounded however many events the namespace holds (on the
real test cluster: the events of the real scheduler and of the node agent among many others)."""

from __future__ import annotations

import datetime
from concurrent.futures import ThreadPoolExecutor

from kubernetes.client import CoreV1Api
from traitlets.config import Config

from tests.kube.cluster.fixtures import Namespace
from tests.kube.test_hubflow_spawner import make_spawner

LIMIT = 300


def flood_events(ns: Namespace, count: int) -> None:
    """`count` events about other pods, written by the admin (as other controllers would)."""
    core = CoreV1Api(ns.cluster.client())

    def write(i: int) -> None:
        involved = {"apiVersion": "v1", "kind": "Pod", "namespace": ns.name,
                    "name": f"batch-{i}", "uid": f"uid-{i}"}  # fmt: skip
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"batch-{i}."},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "involvedObject": involved, "reason": "Pulled", "message": "x", "type": "Normal",
            "source": {"component": "kubelet", "host": "k"},
        }  # fmt: skip
        core.create_namespaced_event(ns.name, event)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(count)))


async def test_the_event_cache_keeps_the_newest_events_up_to_its_limit(
    kubespawner_ns: Namespace,
) -> None:
    cluster, ns = kubespawner_ns.cluster, kubespawner_ns.name
    flood_events(kubespawner_ns, 3 * LIMIT)
    spawner = make_spawner({"profile": "small-cpu"}, ns)
    spawner.config = Config({"BoundedEventReflector": {"max_events": LIMIT}})
    await spawner._start_watching_events()
    reflector = spawner.event_reflector
    assert reflector is not None and len(reflector.events) == LIMIT

    # A spawn still sees its own events, which are the newest, and the cache stays bounded.
    await spawner.start()
    reasons = [event["reason"] for event in spawner.events]
    assert "Scheduled" in reasons and "Started" in reasons
    flood_events(kubespawner_ns, LIMIT)
    await spawner.stop()
    assert len(reflector.events) <= LIMIT
    assert len(cluster.objects("events", ns)) > 4 * LIMIT
