"""Object storage with one resourceVersion counter, a bounded change history and listeners."""

from __future__ import annotations

import copy
import datetime
import itertools
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


def now_iso() -> str:
    """A timestamp the way Kubernetes writes them (seconds, UTC, Z)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """A MicroTime (events.k8s.io eventTime)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Change:
    """One committed write: ADDED, MODIFIED or DELETED, with the object before and after."""

    rv: int
    type: str
    key: str
    obj: Obj
    old: Obj | None


class Store:
    """All objects, keyed by storage key then (namespace, name); single-threaded (the loop's)."""

    def __init__(self, history: int = 1000) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = itertools.count(1000)
        self.rv = next(self._rv)
        self.history: deque[Change] = deque(maxlen=history)
        #: Changes at or below this resourceVersion are no longer in the history (410 Gone).
        self.compacted_rv = self.rv
        self.listeners: list[Callable[[Change], None]] = []

    def get(self, key: str, namespace: str, name: str) -> Obj | None:
        found = self._objects.get(key, {}).get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def objects(self, key: str, namespace: str | None = None) -> list[Obj]:
        """Objects under `key` (in one namespace, or all), oldest first."""
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in self._objects.get(key, {}).items()
            if namespace is None or ns == namespace
        ]

    def _commit(self, type_: str, key: str, obj: Obj, old: Obj | None) -> Obj:
        self.rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        change = Change(self.rv, type_, key, copy.deepcopy(obj), old)
        self.history.append(change)
        for listener in list(self.listeners):
            listener(change)
        return copy.deepcopy(obj)

    def create(self, key: str, obj: Obj) -> Obj:
        """Store a new object: uid, creationTimestamp and resourceVersion are set here."""
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_iso())
        self._objects.setdefault(key, {})[(meta.get("namespace", ""), meta["name"])] = obj
        return self._commit("ADDED", key, obj, None)

    def update(self, key: str, obj: Obj) -> Obj:
        meta = obj["metadata"]
        ident = (meta.get("namespace", ""), meta["name"])
        old = self._objects[key][ident]
        self._objects[key][ident] = obj
        return self._commit("MODIFIED", key, obj, old)

    def delete(self, key: str, namespace: str, name: str) -> Obj:
        old = self._objects[key].pop((namespace, name))
        return self._commit("DELETED", key, copy.deepcopy(old), old)

    def exists(self, key: str, namespace: str, name: str) -> bool:
        return (namespace, name) in self._objects.get(key, {})

    def compact(self) -> None:
        """Forget the whole history, as an etcd compaction does: older watches get 410."""
        self.history.clear()
        self.compacted_rv = self.rv

    def storage_keys(self) -> list[str]:
        return list(self._objects)
