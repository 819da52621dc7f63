"""Status conditions, as controllers write them."""

from __future__ import annotations

from typing import Any

from tests.kube.sim.store import now_iso


def set_condition(obj: dict[str, Any], condition: dict[str, Any]) -> None:
    """Add or replace a condition; lastTransitionTime only moves when the status changes."""
    conditions = obj.setdefault("status", {}).setdefault("conditions", [])
    for i, old in enumerate(conditions):
        if old["type"] == condition["type"]:
            same = old.get("status") == condition["status"]
            stamp = old.get("lastTransitionTime") if same else now_iso()
            conditions[i] = {"lastProbeTime": None, "lastTransitionTime": stamp, **condition}
            return
    conditions.append({"lastProbeTime": None, "lastTransitionTime": now_iso(), **condition})
