"""The hub's memory for pod events stays bounded however many events the namespace holds."""

from __future__ import annotations

from traitlets.config import Config

from tests.kube.sim import Simulator
from tests.kube.sim.events import make_event
from tests.kube.test_hubflow_spawner import make_spawner

LIMIT = 300


def flood_events(cluster: Simulator, count: int) -> None:
    """`count` events about other pods, written straight into the cluster's store."""
    events = cluster.resource("events")

    def write() -> None:
        for i in range(count):
            other = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"batch-{i}", "namespace": "default", "uid": f"uid-{i}"},
            }
            cluster.api.create(events, "default", make_event(other, "Normal", "Pulled", "x", "k"))

    cluster.call(write)


async def test_the_event_cache_keeps_the_newest_events_up_to_its_limit(
    k8s_cluster: Simulator, kubespawner_config: None
) -> None:
    flood_events(k8s_cluster, 3 * LIMIT)
    spawner = make_spawner({"profile": "small-cpu"})
    spawner.config = Config({"BoundedEventReflector": {"max_events": LIMIT}})
    await spawner._start_watching_events()
    reflector = spawner.event_reflector
    assert reflector is not None and len(reflector.events) == LIMIT

    # A spawn still sees its own events, which are the newest, and the cache stays bounded.
    await spawner.start()
    reasons = [event["reason"] for event in spawner.events]
    assert "Scheduled" in reasons and "Started" in reasons
    flood_events(k8s_cluster, LIMIT)
    await spawner.stop()
    assert len(reflector.events) <= LIMIT
    assert len(k8s_cluster.objects("events", "default")) > 4 * LIMIT
