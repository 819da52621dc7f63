"""Watch streams: replay from a resourceVersion (or synthetic ADDED), then live changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from tests.kube.sim.errors import expired
from tests.kube.sim.resources import ResourceType
from tests.kube.sim.store import Change, Store

Obj = dict[str, Any]


def gone_event(rv: str, current: int) -> Obj:
    """The ERROR event a watch gets when its resourceVersion has been compacted away."""
    return {
        "type": "ERROR",
        "object": expired(f"too old resource version: {rv} ({current})").status(),
    }


def _translate(change: Change, match: Callable[[Obj], bool]) -> str | None:
    """The event type a watcher with this selector sees for the change, if any."""
    now = match(change.obj)
    before = change.old is not None and match(change.old)
    if change.type == "MODIFIED":
        if now and before:
            return "MODIFIED"
        return "ADDED" if now else "DELETED" if before else None
    return change.type if now or before else None


class Watcher:
    """One watch request's stream of events (dicts with type and object)."""

    def __init__(
        self,
        store: Store,
        rtype: ResourceType,
        namespace: str | None,
        match: Callable[[Obj], bool],
        present: Callable[[ResourceType, Obj], Obj],
        stopping: asyncio.Event,
    ) -> None:
        self.store, self.rtype, self.namespace = store, rtype, namespace
        self.match, self.present, self.stopping = match, present, stopping

    def _event(self, change: Change) -> Obj | None:
        if change.key != self.rtype.key:
            return None
        if self.namespace is not None and change.obj["metadata"].get("namespace") != self.namespace:
            return None
        kind = _translate(change, self.match)
        return {"type": kind, "object": self.present(self.rtype, change.obj)} if kind else None

    async def events(
        self, rv: str | None, timeout: float, bookmark_every: float | None
    ) -> AsyncGenerator[Obj, None]:
        queue: asyncio.Queue[Change] = asyncio.Queue()
        self.store.listeners.append(queue.put_nowait)
        try:
            if rv in (None, "", "0"):
                for obj in self.store.objects(self.rtype.key, self.namespace):
                    if self.match(obj):
                        yield {"type": "ADDED", "object": self.present(self.rtype, obj)}
            elif not rv.isdigit() or int(rv) < self.store.compacted_rv:
                yield gone_event(rv, self.store.rv)
                return
            else:
                for change in list(self.store.history):
                    event = self._event(change) if change.rv > int(rv) else None
                    if event:
                        yield event
            async for event in self._live(queue, timeout, bookmark_every):
                yield event
        finally:
            self.store.listeners.remove(queue.put_nowait)

    async def _live(
        self, queue: asyncio.Queue[Change], timeout: float, bookmark_every: float | None
    ) -> AsyncIterator[Obj]:
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + bookmark_every if bookmark_every else float("inf")
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if now >= deadline:
                    return
                if now >= next_bookmark and queue.empty():
                    assert bookmark_every
                    next_bookmark = now + bookmark_every
                    meta = {"resourceVersion": str(self.store.rv)}
                    yield {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": self.rtype.kind,
                            "apiVersion": self.rtype.api_version,
                            "metadata": meta,
                        },
                    }
                    continue
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {get, stop},
                    timeout=min(deadline, next_bookmark) - now,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if get not in done:
                    get.cancel()
                    continue
                event = self._event(get.result())
                if event:
                    yield event
        finally:
            stop.cancel()
