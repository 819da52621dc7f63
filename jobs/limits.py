"""Per-user limits of the jobs service: requests a second, log follows open at once, jobs
waiting in the queue, request body sizes and log line length (the settings: `JobsSettings` in
hub/settings.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hubflow.hub.settings import JobsSettings
from hubflow.jobs.quota import Refusal
from hubflow.jobs.store import JobStore
from hubflow.launcher.contract import JobState

#: The largest body of any request but a submit (they carry a few small fields at most).
SMALL_BODY_BYTES = 64 * 2**10
#: What a submit body may hold besides its base64 payload (the other fields, JSON syntax).
SUBMIT_OVERHEAD_BYTES = 64 * 2**10


def submit_body_bytes(max_payload_bytes: int) -> int:
    """The largest submit body: a payload of `max_payload_bytes` in base64, plus the rest."""
    return 4 * -(-max_payload_bytes // 3) + SUBMIT_OVERHEAD_BYTES


@dataclass(frozen=True)
class Limits:
    """What one user may hold of the service at once."""

    max_log_follows: int = 8
    max_queued_jobs: int = 20
    max_log_line: int = 65536
    max_uploads: int = 2
    max_request_rate: int = 20
    request_burst: int = 40
    request_wait: float = 10

    @classmethod
    def from_settings(cls, settings: JobsSettings) -> Limits:
        return cls(
            settings.max_log_follows,
            settings.max_queued_jobs,
            settings.max_log_line,
            settings.max_uploads,
            settings.max_request_rate,
            settings.request_burst,
            settings.request_wait,
        )


class RequestPace:
    """Each user's requests at `rate` a second on average, `burst` at once above it: a request
    past that waits its turn (`turn` says how long), and one that would wait more than
    `max_wait` seconds is refused with 429. A token bucket, kept as the time at which each
    user's bucket will be full again (GCRA)."""

    def __init__(self, rate: int, burst: int, max_wait: float) -> None:
        self.interval = 1 / rate if rate else 0.0
        self.tolerance = burst * self.interval
        self.max_wait = max_wait
        #: When each user's bucket is full again (monotonic seconds); a past time: it is full.
        self.full_at: dict[str, float] = {}

    def turn(self, user: str, now: float) -> float:
        """Take one of `user`'s requests' turns: the seconds to wait for it (0: go now), or
        raise the 429 Refusal."""
        if not self.interval:
            return 0.0
        full_at = max(self.full_at.get(user, now), now)
        wait = max(full_at - self.tolerance, now) - now
        if wait > self.max_wait:
            raise Refusal(
                429,
                "Authorization",
                f"more than {1 / self.interval:.0f} requests a second: at most that per user "
                "on average (HUBFLOW_JOBS_MAX_REQUEST_RATE)",
                quota="max_request_rate",
                limit=round(1 / self.interval),
            )
        if len(self.full_at) > 10_000:  # forget the users whose buckets are full again
            self.full_at = {name: at for name, at in self.full_at.items() if at > now}
        self.full_at[user] = full_at + self.interval
        return wait

    def charge(self, user: str, turns: float, now: float) -> None:
        """Count a request's work as `turns` more requests of `user`'s (a long job list, many
        log lines): their next requests wait that much longer."""
        if self.interval and turns > 0:
            self.full_at[user] = max(self.full_at.get(user, now), now) + turns * self.interval


class UserSlots:
    """Counts what each user holds open at once (log follows, submits being uploaded); one past
    the limit is refused with 429 naming it."""

    def __init__(self, limit: int, field: str, quota: str, setting: str, what: str) -> None:
        self.limit, self.field, self.quota, self.setting, self.what = (
            limit,
            field,
            quota,
            setting,
            what,
        )
        self.open: Counter[str] = Counter()

    def acquire(self, user: str) -> None:
        """Take one of `user`'s slots, or raise the 429 Refusal."""
        if self.open[user] >= self.limit:
            raise Refusal(
                429,
                self.field,
                f"{self.open[user]} {self.what} open: at most {self.limit} per user "
                f"({self.setting})",
                quota=self.quota,
                limit=self.limit,
            )
        self.open[user] += 1

    def release(self, user: str) -> None:
        """Give one of `user`'s slots back."""
        self.open[user] -= 1
        if self.open[user] <= 0:
            del self.open[user]


def follow_slots(limits: Limits) -> UserSlots:
    """The log follows each user has open (`logs?follow=1`)."""
    return UserSlots(
        limits.max_log_follows,
        "follow",
        "max_log_follows",
        "HUBFLOW_JOBS_MAX_LOG_FOLLOWS",
        "log follows",
    )


def upload_slots(limits: Limits) -> UserSlots:
    """The submits each user is sending at once (each may carry a payload of hundreds of MiB)."""
    return UserSlots(
        limits.max_uploads, "payload", "max_uploads", "HUBFLOW_JOBS_MAX_UPLOADS", "submits"
    )


def check_queue_room(store: JobStore, user: str, limit: int) -> None:
    """Refuse (429) a submit of `user`'s when `limit` of their jobs already wait in the queue."""
    queued = len(store.list(user=user, states=[JobState.QUEUED]))
    if queued >= limit:
        raise Refusal(
            429,
            "queued_jobs",
            f"{queued} of your jobs are queued: at most {limit} may wait at once "
            "(HUBFLOW_JOBS_MAX_QUEUED); wait for one to start, or cancel one",
            quota="max_queued_jobs",
            limit=limit,
        )
