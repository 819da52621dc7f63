"""Fault injection: the next N requests matching (verb, resource) misbehave on purpose."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.kube.sim.errors import ApiError

_REASONS = {
    409: ("Conflict", "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again"),
    410: ("Expired", "too old resource version"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected by the simulator"),
    503: ("ServiceUnavailable", "The server is currently unable to handle the request"),
}  # fmt: skip


@dataclass
class Fault:
    """What to do to matching requests. verb: get/list/watch/create/update/patch/delete/log or *."""

    verb: str = "*"
    resource: str = "*"
    #: Answer this HTTP code with a Status (429 also sends Retry-After).
    status: int | None = None
    retry_after: int = 1
    #: Wait this many seconds before answering (normally, unless `status` is set too).
    delay: float = 0.0
    #: Watches: close the connection abruptly after this many events.
    cut_after: int | None = None
    #: Watches: send a 410 Expired ERROR event instead of events, as for a compacted resourceVersion.
    gone: bool = False
    #: How many matching requests this applies to.
    times: int = 1
    hits: int = field(default=0)

    def error(self, resource: str) -> ApiError:
        assert self.status is not None
        reason, message = _REASONS.get(self.status, ("InternalError", "injected fault"))
        headers = {"Retry-After": str(self.retry_after)} if self.status == 429 else {}
        details = (
            {"kind": resource, "retryAfterSeconds": self.retry_after}
            if self.status == 429
            else None
        )
        return ApiError(self.status, reason, message, details, headers)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Faults:
    """The pending faults; shared between the test thread and the server's loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pending: list[Fault] = []
        self.used: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.pending.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.pending.clear()

    def take(self, verb: str, resource: str) -> Fault | None:
        """The first pending fault matching this request, used up by one."""
        with self._lock:
            for fault in self.pending:
                if fault.verb in ("*", verb) and fault.resource in ("*", resource):
                    fault.hits += 1
                    if fault.hits >= fault.times:
                        self.pending.remove(fault)
                        self.used.append(fault)
                    return fault
        return None
