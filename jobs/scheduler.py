"""Moves jobs through their states: starts queued jobs when a slot frees, follows started ones
through the backend, and cancels."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from hubflow.jobs.backend import JobBackend, StartError
from hubflow.jobs.quota import queue_reason
from hubflow.jobs.store import Job, JobStore
from hubflow.launcher.contract import JobState
from hubflow.profiles import ProfileCatalog

log = logging.getLogger(__name__)


class Scheduler:
    """The one place job states change (besides the records a submission creates)."""

    def __init__(
        self, store: JobStore, backend: JobBackend, catalog: Callable[[], ProfileCatalog]
    ) -> None:
        self.store = store
        self.backend = backend
        self.catalog = catalog

    def wait_reason(self, job: Job) -> str | None:
        """Why `job` cannot start yet: the user's concurrent-jobs limit, or its GPUs held by
        another of the user's jobs; None when it may start now."""
        active = self.store.list(user=job.user, states=[JobState.PENDING, JobState.RUNNING])
        reason = queue_reason(self.catalog().effective_quota(job.groups), len(active))
        if reason:
            return reason
        for other in active:
            busy = sorted(set(other.gpus) & set(job.gpus))
            if busy:
                return f"waiting for GPUs: {', '.join(busy)} in use by job {other.id}"
        return None

    def submit(self, job: Job, payload: bytes) -> Job:
        """Record a new job and start it, or queue it when the user is at their jobs limit.

        On any failure nothing is left behind: no record, no directory.
        """
        reason = self.wait_reason(job)
        job.state = JobState.QUEUED.value
        job.reason = reason or ""
        self.backend.prepare(job.id, payload)
        try:
            self.store.add(job)
            if reason is None:
                job = self._start(job)
        except BaseException:
            self.backend.discard(job.id)
            self.store.delete(job.id)
            raise
        return job

    def _start(self, job: Job) -> Job:
        recorded = self.backend.launch(job)
        log.info("Started job %s of %s %s", job.id, job.user, recorded)
        return self.store.update(
            job.id, state=JobState.PENDING, reason="", started=time.time(), **recorded
        )

    def follow_started(self) -> None:
        """Bring started jobs' states up to date with what the backend sees."""
        for job in self.store.list(states=[JobState.PENDING, JobState.RUNNING]):
            outcome = self.backend.poll(job)
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

    def start_queued(self) -> None:
        """Start queued jobs, oldest first, while their users have slots; refresh the reasons."""
        for job in self.store.list(states=[JobState.QUEUED]):
            reason = self.wait_reason(job)
            if reason is None:
                try:
                    self._start(job)
                except (OSError, StartError) as e:
                    self.store.update(job.id, state=JobState.FAILED, error={"message": str(e)})
            elif reason != job.reason:
                self.store.update(job.id, reason=reason)

    def tick(self) -> None:
        """One round of following started jobs and starting queued ones."""
        self.follow_started()
        self.start_queued()

    async def cancel(self, job: Job, by: str) -> Job:
        """Cancel a job: record it first (so nothing restarts it), then stop its processes."""
        if job.job_state.finished:
            return job
        job = self.store.update(job.id, state=JobState.CANCELLED, reason=f"cancelled by {by}")
        await self.backend.cancel(job)
        return job
