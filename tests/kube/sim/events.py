"""Events: recording them (scheduler, kubelet) and the events.k8s.io/v1 view of core events."""

from __future__ import annotations

import secrets
from typing import Any

from tests.kube.sim.store import now_iso, now_micro

Obj = dict[str, Any]

_INVOLVED = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


def make_event(
    involved: Obj,
    type_: str,
    reason: str,
    message: str,
    component: str,
    host: str = "",
    field_path: str = "",
) -> Obj:
    """A core/v1 Event about `involved`, as the scheduler or a kubelet writes it."""
    meta = involved["metadata"]
    stamp = now_iso()
    event: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{secrets.token_hex(8)}",
            "namespace": meta.get("namespace") or "default",
        },
        "involvedObject": {
            "kind": involved["kind"],
            "namespace": meta.get("namespace", ""),
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": involved["apiVersion"],
            "resourceVersion": meta.get("resourceVersion", ""),
            **({"fieldPath": field_path} if field_path else {}),
        },
        "reason": reason,
        "message": message,
        "source": {"component": component, **({"host": host} if host else {})},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": type_,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": host or component,
    }
    return event


def _micro(stamp: str | None) -> str:
    """A core event's second-resolution timestamp as a MicroTime (the view's eventTime)."""
    return stamp.replace("Z", ".000000Z") if stamp else now_micro()


def to_events_v1(event: Obj) -> Obj:
    """A core/v1 Event as events.k8s.io/v1 shows it."""
    out: Obj = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": event["metadata"],
        "regarding": event.get("involvedObject", {}),
        "note": event.get("message", ""),
        "reason": event.get("reason", ""),
        "type": event.get("type", "Normal"),
        "eventTime": event.get("eventTime") or _micro(event.get("firstTimestamp")),
        "reportingController": event.get("reportingComponent")
        or event.get("source", {}).get("component", ""),
        "reportingInstance": event.get("reportingInstance", ""),
        "deprecatedSource": event.get("source", {}),
        "deprecatedFirstTimestamp": event.get("firstTimestamp"),
        "deprecatedLastTimestamp": event.get("lastTimestamp"),
        "deprecatedCount": event.get("count"),
    }
    for key in ("action", "related", "series"):
        if key in event:
            out[key] = event[key]
    return {k: v for k, v in out.items() if v is not None}


def from_events_v1(event: Obj) -> Obj:
    """An events.k8s.io/v1 Event stored as the core/v1 Event it is."""
    core: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": event.get("metadata", {}),
        "involvedObject": {k: v for k, v in event.get("regarding", {}).items() if k in _INVOLVED},
        "message": event.get("note", ""),
        "reason": event.get("reason", ""),
        "type": event.get("type", "Normal"),
        "eventTime": event.get("eventTime") or now_micro(),
        "reportingComponent": event.get("reportingController", ""),
        "reportingInstance": event.get("reportingInstance", ""),
        "source": event.get("deprecatedSource")
        or {"component": event.get("reportingController", "")},
        "count": event.get("deprecatedCount", 1),
    }
    for key in ("action", "related", "series"):
        if key in event:
            core[key] = event[key]
    return core
