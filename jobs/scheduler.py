"""Moves jobs through their states: starts queued jobs when a slot frees, follows started ones
through the backend, and cancels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hubflow.hub.hubapi import HubAPI
from hubflow.jobs.backend import JobBackend, StartError
from hubflow.jobs.models import JobRequest
from hubflow.jobs.quota import check_hard_limits
from hubflow.jobs.store import JobRecord, JobStore
from hubflow.launcher.contract import JobState
from hubflow.profiles import Holding, ProfileCatalog, Usage, job_wait_reason
from hubflow.profiles.server_record import ServerRecord

#: How long what users' servers hold (for GPU quotas) is reused while jobs wait in the queue.
SERVERS_REFRESH_S = 10.0
#: How often finished jobs are looked at for the retention.
EXPIRE_EVERY_S = 60.0

log = logging.getLogger(__name__)


class Scheduler:
    """The one place job states change (besides the records a submission creates)."""

    def __init__(
        self,
        store: JobStore,
        backend: JobBackend,
        catalog: Callable[[], ProfileCatalog],
        servers: Callable[[], Awaitable[list[Holding]]] | None = None,
        retention: float = 0,
    ) -> None:
        self.store = store
        self.backend = backend
        self.catalog = catalog
        #: Seconds a finished job is kept (record, logs, result); 0 keeps it for ever.
        self.retention = retention
        self.expired_at = float("-inf")
        #: Where what users' servers hold comes from (the hub, by default).
        self.servers_source = servers
        #: What users' servers held when last asked, and when that was (monotonic seconds).
        self.servers: list[Holding] = []
        self.servers_asked = float("-inf")
        #: What else holds GPUs of its own under the quotas (warm pools' pods, jobs/pools.py).
        self.other_holdings: Callable[[], list[Holding]] = list
        self._refreshing: asyncio.Task[None] | None = None
        #: The jobs not finished at the end of the last round (a log follow looks here rather
        #: than in the database while its job prints nothing).
        self.unfinished: frozenset[str] = frozenset()

    async def refresh_servers(self) -> None:
        """Ask the hub again what users' servers hold (their GPUs count with jobs' GPUs); on
        failure the last answer stays in force."""
        self.servers_asked = time.monotonic()
        try:
            source = self.servers_source or HubAPI().server_holdings
            self.servers = await source()
        except Exception as e:
            log.warning("Cannot ask the hub what users' servers hold: %s", e)

    async def admit(
        self, groups: list[str], request: JobRequest, server: ServerRecord
    ) -> dict[str, Any]:
        """Refuse (quota.Refusal) a job over a per-job limit, one the backend cannot run for
        `server`, or one whose own GPUs exceed a GPU quota with nothing else running; else
        return what the backend records with it (`JobRecord.spec`). What servers hold is brought up
        to date for the job's place in the queue."""
        quota = self.catalog().effective_quota(groups)
        check_hard_limits(quota, request)
        spec = self.backend.admit(request, server)
        if self.backend.holds_gpus:
            check_hard_limits(quota, request, request.total_gpus)
        await self.refresh_servers()
        return spec

    def new_gpus(self, job: JobRecord) -> int:
        """The GPUs a job holds of its own (its ranks' pods); 0 where it uses its server's."""
        return job.workers * job.gpus_per_worker if self.backend.holds_gpus else 0

    def usage(self, user: str, groups: list[str], active: list[JobRecord]) -> Usage:
        """What `user` and each of `groups` hold now: servers (as last asked), the `active`
        (started) jobs' own GPUs, and the other holdings (warm pools)."""
        jobs = [Holding(o.user, frozenset(o.groups), self.new_gpus(o), False) for o in active]
        return Usage.of([*self.servers, *jobs, *self.other_holdings()], user, groups)

    def wait_reason(self, job: JobRecord, active: list[JobRecord] | None = None) -> str | None:
        """Why `job` cannot start yet: the user's concurrent-jobs limit, the GPUs the user's or a
        group's servers and jobs hold under their GPU quotas, or its GPUs held by another of the
        user's jobs; None when it may start now. `active`: the started jobs, when known."""
        if active is None:
            active = self.store.list(states=[JobState.PENDING, JobState.RUNNING])
        usage = self.usage(job.user, job.groups, active)
        quota = self.catalog().effective_quota(job.groups)
        reason = job_wait_reason(quota, usage, self.new_gpus(job))
        if reason:
            return reason
        for other in active:
            if other.user != job.user:
                continue
            busy = sorted(set(other.gpus) & set(job.gpus))
            if busy:
                return f"waiting for GPUs: {', '.join(busy)} in use by job {other.id}"
        return None

    def submit(self, job: JobRecord, payload: bytes) -> JobRecord:
        """Keep the job's payload, record the job and start it, or queue it when the user is at
        their jobs limit (`enter`)."""
        self.backend.prepare(job.id, payload)
        return self.enter(job)

    def enter(self, job: JobRecord) -> JobRecord:
        """Record a new job whose payload the backend keeps already (`backend.prepare`, which
        the jobs API runs in a thread: writing hundreds of MiB takes a while) and start it, or
        queue it when the user is at their jobs limit.

        On any failure nothing is left behind: no record, no directory.
        """
        reason = self.wait_reason(job)
        job.state = JobState.QUEUED.value
        job.reason = reason or ""
        try:
            self.store.add(job)
            if reason is None:
                job = self._start(job)
        except BaseException:
            self.backend.discard(job.id)
            self.store.delete(job.id)
            raise
        return job

    def _start(self, job: JobRecord) -> JobRecord:
        """Record that the job is the backend's from now on, start it, record what the backend
        says (a crash between the two is finished by `recover`, never started twice)."""
        self.store.update(job.id, state=JobState.PENDING, reason="", started=time.time())
        recorded = self.backend.launch(job)
        log.info("Started job %s of %s %s", job.id, job.user, recorded)
        return self.store.update(job.id, launched=True, **recorded)

    async def recover(self) -> None:
        """At the service's start, finish what a crash interrupted: a start not recorded (the
        backend's job is adopted if it runs, else started) and a cancel not carried out."""
        for job in self.store.list(states=[JobState.PENDING], launched=False):
            recorded = self.backend.adopt(job)
            if recorded is None:
                log.info("Job %s: its start was interrupted before it started; starting it", job.id)
                recorded = self.backend.launch(job)
            else:
                log.info("Job %s: its start was interrupted after it started; following it", job.id)
            self.store.update(job.id, launched=True, **recorded)
        for job in self.store.list(stopping=True):
            log.info("Job %s: its cancel was interrupted; stopping it", job.id)
            await self.backend.cancel(job)
            self.store.update(job.id, stopping=False)

    def follow_started(self) -> set[str]:
        """Bring started jobs' states up to date with what the backend sees; the jobs that have
        not finished."""
        running = set()
        for job in self.store.list(states=[JobState.PENDING, JobState.RUNNING]):
            outcome = self.backend.poll(job)
            if not outcome.state.finished:
                running.add(job.id)
            if outcome.state.value == job.state:
                if outcome.reason != job.reason and not outcome.state.finished:
                    self.store.update(job.id, reason=outcome.reason)
                continue
            changes: dict[str, object] = {"state": outcome.state, "reason": outcome.reason}
            if outcome.state is JobState.RUNNING or (
                outcome.state.finished and job.running is None
            ):
                changes["running"] = time.time()
            if outcome.state.finished:
                changes.update(
                    exit_codes=outcome.exit_codes,
                    failing_rank=outcome.failing_rank,
                    error=outcome.error,
                    reason="",
                )
            log.info("Job %s: %s -> %s", job.id, job.state, outcome.state.value)
            self.store.update(job.id, **changes)
        return running

    def start_queued(self) -> set[str]:
        """Start queued jobs, oldest first, while their users have slots; refresh the reasons;
        the jobs started or still queued. The started jobs are read once a round, not once per
        queued job: a full queue costs the round little."""
        active = self.store.list(states=[JobState.PENDING, JobState.RUNNING])
        waiting = set()
        for job in self.store.list(states=[JobState.QUEUED]):
            reason = self.wait_reason(job, active)
            waiting.add(job.id)
            if reason is None:
                try:
                    active.append(self._start(job))
                except (OSError, StartError) as e:
                    self.store.update(job.id, state=JobState.FAILED, error={"message": str(e)})
                    waiting.discard(job.id)
            elif reason != job.reason:
                self.store.update(job.id, reason=reason)
        return waiting

    def tick(self) -> None:
        """One round of following started jobs and starting queued ones (what servers hold is
        asked again now and then while jobs wait)."""
        self.unfinished = frozenset(self.follow_started() | self.start_queued())
        if time.monotonic() - self.expired_at > EXPIRE_EVERY_S:
            self.expire()
        if time.monotonic() - self.servers_asked > SERVERS_REFRESH_S and self.store.list(
            states=[JobState.QUEUED]
        ):
            # no event loop yet in the service's first round: the next round asks
            with contextlib.suppress(RuntimeError):
                self._refreshing = asyncio.get_running_loop().create_task(self.refresh_servers())

    def expire(self) -> None:
        """Forget the jobs that finished more than `retention` seconds ago: their records and
        everything the service kept of them (payload, logs, result, errors)."""
        self.expired_at = time.monotonic()
        if not self.retention:
            return
        cutoff = time.time() - self.retention
        for job in self.store.list(states=[s for s in JobState if s.finished]):
            if job.finished is not None and job.finished < cutoff:
                self.backend.discard(job.id)
                self.store.delete(job.id)
                log.info("Job %s of %s: past the retention, forgotten", job.id, job.user)

    async def cancel(self, job: JobRecord, by: str) -> JobRecord:
        """Cancel a job: record it first, with its stop to do (so nothing restarts it and a
        crash before the stop is finished by `recover`), then stop its processes."""
        if job.job_state.finished:
            return job
        job = self.store.update(
            job.id,
            state=JobState.CANCELLED,
            reason=f"cancelled by {by}",
            stopping=job.state != JobState.QUEUED.value,
        )
        await self.backend.cancel(job)
        return self.store.update(job.id, stopping=False)
