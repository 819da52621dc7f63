"""A bounded cache of the namespace's pod events for KubeSpawner's event reflector.

KubeSpawner keeps every pod event of the namespace in memory for as long as the API server keeps
it (an hour by default); a busy namespace holds far more events than the spawns in progress need.
This reflector keeps only the newest `max_events`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from kubespawner.spawner import EventReflector
from traitlets import Integer, validate

Obj = dict[str, Any]


def event_time(event: Obj) -> str:
    """When the event last happened (ISO text, sorts in time order; '' when unknown)."""
    return str(event.get("lastTimestamp") or event.get("eventTime") or "")


class BoundedEvents(OrderedDict[str, Obj]):
    """A mapping that forgets its least recently written entries beyond `limit`."""

    def __init__(self, limit: int, items: dict[str, Obj] | None = None) -> None:
        super().__init__()
        self.limit = limit
        for key, value in sorted((items or {}).items(), key=lambda item: event_time(item[1])):
            self[key] = value

    def __setitem__(self, key: str, value: Obj) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class BoundedEventReflector(EventReflector):
    """KubeSpawner's event reflector, holding at most `max_events` events."""

    max_events = Integer(
        2000,
        config=True,
        help="""
        The most pod events the hub keeps in memory (the newest win). Spawns in progress need
        only their own few; the rest of the namespace's events are forgotten.
        """,
    )

    @validate("resources")
    def _bounded(self, proposal: Any) -> BoundedEvents:
        value = proposal["value"]
        if isinstance(value, BoundedEvents) and value.limit == self.max_events:
            return value
        return BoundedEvents(self.max_events, dict(value))
