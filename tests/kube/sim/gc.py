"""The garbage collector: deleting an owner deletes what names it in ownerReferences."""

from __future__ import annotations

import asyncio

from tests.kube.sim.api import Api
from tests.kube.sim.store import Change


class GarbageCollector:
    """Background propagation: dependents go soon after their owner, as in a real cluster."""

    def __init__(self, api: Api) -> None:
        self.api = api
        api.store.listeners.append(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.type == "DELETED":
            asyncio.get_running_loop().call_soon(
                self.api.delete_dependents, change.obj["metadata"]["uid"]
            )
