"""Job records, kept with SQLAlchemy (a SQLite file under the data dir by default); the schema's
versions and upgrades are in jobs/db.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, false, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from hubflow.jobs.db import make_engine, prepare
from hubflow.jobs.models import JobRequest
from hubflow.launcher.contract import JobState
from hubflow.profiles.server_record import ServerRecord


class Base(DeclarativeBase):
    pass


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat().replace("+00:00", "Z")


class JobRecord(Base):
    """One job: who asked for what, where it runs, and how it went."""

    __tablename__ = "jobs"
    #: One job per user and client key: a retried submit finds the job its first try made.
    __table_args__ = (Index("ix_jobs_user_client_key", "user", "client_key", unique=True),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    name: Mapped[str] = mapped_column(String(63), default="")
    framework: Mapped[str] = mapped_column(String(32))
    workers: Mapped[int] = mapped_column(Integer)
    gpus_per_worker: Mapped[int] = mapped_column(Integer, default=0)
    gpus: Mapped[list[str]] = mapped_column(JSON, default=list)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    workspace: Mapped[str] = mapped_column(String(4096))
    environment: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: What the backend recorded at submission to start the job (image, volume, resources...).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(1024), default="")
    created: Mapped[float] = mapped_column(Float)
    started: Mapped[float | None] = mapped_column(Float, nullable=True)
    running: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_codes: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    failing_rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    supervisor_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    supervisor_start: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The submitting client's key for this submission (a retry sends the same one).
    client_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The backend has started the job and what it returned is recorded.
    launched: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Cancelled, but the backend has not yet confirmed its processes or resources are gone.
    stopping: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    @classmethod
    def for_request(
        cls,
        user: str,
        groups: list[str],
        request: JobRequest,
        server: ServerRecord,
        gpus: list[str],
        spec: dict[str, Any],
        **fields: Any,
    ) -> JobRecord:
        """A new record of `user`'s checked `request`, run from `server` with `gpus`."""
        return cls(
            id=new_job_id(),
            user=user,
            server_name=request.server_name,
            name=request.name,
            framework=request.framework,
            workers=request.workers,
            gpus_per_worker=request.gpus_per_worker,
            gpus=list(gpus),
            groups=groups,
            workspace=server.workspace,
            environment=server.environment,
            spec=spec,
            created=time.time(),
            **fields,
        )

    @property
    def job_state(self) -> JobState:
        return JobState(self.state)

    def to_model(self, progress: dict[str, Any] | None = None) -> dict[str, Any]:
        """The job as the REST API shows it."""
        return {
            "id": self.id,
            "user": self.user,
            "server_name": self.server_name,
            "name": self.name,
            "framework": self.framework,
            "workers": self.workers,
            "gpus_per_worker": self.gpus_per_worker,
            "gpus": list(self.gpus or []),
            "state": self.state,
            "reason": self.reason,
            "created": _iso(self.created),
            "started": _iso(self.started),
            "running": _iso(self.running),
            "finished": _iso(self.finished),
            "exit_codes": self.exit_codes,
            "failing_rank": self.failing_rank,
            "error": self.error,
            "progress": progress,
        }


def new_job_id() -> str:
    """A short, unique, URL- and file-safe job id."""
    return uuid.uuid4().hex[:12]


class DuplicateKey(Exception):
    """A job with this user and client key is already recorded."""


class JobStore:
    """The job table behind one SQLAlchemy URL, its schema brought to the newest version (or
    refused, without `auto_upgrade`) first."""

    def __init__(
        self, url: str, pool_size: int = 5, max_overflow: int = 10, auto_upgrade: bool = True
    ) -> None:
        self.engine = make_engine(url, pool_size, max_overflow)
        prepare(self.engine, auto_upgrade)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def add(self, job: JobRecord) -> JobRecord:
        """Record a new job; DuplicateKey if the user already has one with its client key."""
        try:
            with self.session() as s:
                s.add(job)
        except IntegrityError:
            if job.client_key and self.by_client_key(job.user, job.client_key):
                raise DuplicateKey(job.client_key) from None
            raise
        return job

    def by_client_key(self, user: str, client_key: str) -> JobRecord | None:
        """The user's job submitted with this client key, if any."""
        query = select(JobRecord).where(JobRecord.user == user, JobRecord.client_key == client_key)
        with self.session() as s:
            return s.scalars(query).first()

    def get(self, job_id: str) -> JobRecord | None:
        with self.session() as s:
            return s.get(JobRecord, job_id)

    def delete(self, job_id: str) -> None:
        with self.session() as s:
            job = s.get(JobRecord, job_id)
            if job is not None:
                s.delete(job)

    def list(
        self,
        user: str | None = None,
        states: list[JobState] | None = None,
        launched: bool | None = None,
        stopping: bool | None = None,
    ) -> list[JobRecord]:
        """Jobs (of one user, in some states, launched or not, stopping or not), oldest first."""
        query = select(JobRecord).order_by(JobRecord.created)
        if user is not None:
            query = query.where(JobRecord.user == user)
        if states is not None:
            query = query.where(JobRecord.state.in_([s.value for s in states]))
        if launched is not None:
            query = query.where(JobRecord.launched == launched)
        if stopping is not None:
            query = query.where(JobRecord.stopping == stopping)
        with self.session() as s:
            return list(s.scalars(query))

    def update(self, job_id: str, **changes: Any) -> JobRecord:
        """Change fields of a job; moving to a finished state stamps `finished`."""
        with self.session() as s:
            job = s.get(JobRecord, job_id)
            if job is None:
                raise KeyError(job_id)
            state = changes.get("state")
            if state is not None and JobState(state).finished and job.finished is None:
                changes.setdefault("finished", time.time())
            for name, value in changes.items():
                setattr(job, name, value.value if isinstance(value, JobState) else value)
        return job
