"""Warm pools in the jobs service: the `api/pools` routes, and the pools themselves (their
states, cells, idle release and breakage). See docs/launcher.md, "Warm pools".

A pool is created with the user's server token (the same checks as a job: submit scope, the
server, quotas, its GPUs) and answers with a random key that only its creator gets; cells and
interrupts carry that key (`Authorization: pool-key KEY`), which is good for that pool only.
The service keeps only the key's hash. States: Starting → Idle ⇄ Busy → Stopped | Broken.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tornado import ioloop, web
from tornado.iostream import StreamClosedError

from hubflow.hub.hubapi import HubAPI, ServerUnavailable
from hubflow.hub.settings import JobsSettings
from hubflow.jobs.backend import LogChunk
from hubflow.jobs.handlers import APIHandler
from hubflow.jobs.models import JobRequest, RequestError, parse_job_request
from hubflow.jobs.quota import Refusal, check_hard_limits, quota_refusal
from hubflow.jobs.store import JobRecord, _iso
from hubflow.launcher.channel import DirectoryChannel
from hubflow.launcher.contract import JobState
from hubflow.profiles import (
    Holding,
    ProfileCatalog,
    QuotaError,
    UserQuota,
    check_gpus,
    check_job_start,
)
from hubflow.profiles.server_record import ServerRecord

log = logging.getLogger(__name__)

STARTING, IDLE, BUSY, STOPPED, BROKEN = "Starting", "Idle", "Busy", "Stopped", "Broken"
LIVE_STATES = (STARTING, IDLE, BUSY)
#: The fields of a `POST api/pools` body.
POOL_FIELDS = ("workers", "gpus_per_worker", "framework", "name", "server_name")
#: How long the ranks get to start (import torch, form the process group) and say hello.
START_TIMEOUT_S = 300.0
#: How often a running cell's new log lines and progress are sent.
CELL_FOLLOW_S = 0.05
#: How often pools are checked for idleness and dead processes.
TICK_S = 1.0
#: How long stopped ranks get to leave their loop before their processes are killed.
STOP_GRACE_S = 2.0
#: The notebook is warned this long (at most half the timeout) before an idle pool goes.
WARN_BEFORE_S = 120
#: How often live pools' servers are looked up: a pool ends with its server (whose GPUs it uses).
SERVER_CHECK_S = 10.0


OnFrame = Callable[[dict[str, Any]], None]
#: Called with the rank and what ended (its pid, its pod and why) when a rank is gone.
OnLost = Callable[[int, str], Awaitable[None]]


class PoolRelay(Protocol):
    """The service's end of one pool's relay: its connected ranks, and what it sends them."""

    @property
    def connected(self) -> int:
        """How many ranks have said hello."""

    @property
    def waiting_for(self) -> str:
        """Why ranks have not said hello yet, as far as the backend knows ("" if not known)."""

    def send_cell(self, cell: int, payload: bytes) -> None:
        """Have every rank run cell N (whose payload `write_cell` has put in its channel)."""

    def send_stop(self) -> None:
        """Have every rank leave its loop."""

    def interrupt(self) -> None:
        """A KeyboardInterrupt in the cell every rank runs."""

    async def close(self) -> None:
        """Drop the ranks' connections and stop listening."""


class PoolBackend(Protocol):
    """Where a pool's ranks run (local processes, or the pods of a Kubeflow job); the pool's
    files (cells, their results and errors, the ranks' logs) are in `channel(pool_id)`."""

    max_payload_bytes: int
    holds_gpus: bool

    def admit(self, request: JobRequest, server: ServerRecord) -> dict[str, Any]: ...
    def channel(self, job_id: str) -> DirectoryChannel: ...
    def read_log(self, job_id: str, rank: int, offset: int, final: bool) -> LogChunk: ...

    async def start_pool(self, job: JobRecord, on_frame: OnFrame, on_lost: OnLost) -> PoolRelay:
        """Start the pool's ranks and its relay (nothing is left behind on failure)."""

    def write_cell(self, pool_id: str, cell: int, payload: bytes) -> DirectoryChannel:
        """A new cell's channel, with its payload where the ranks read it."""

    async def health(self, job: JobRecord, relay: Any) -> tuple[int | None, str] | None:
        """None while the pool's ranks can go on; else the rank to blame (None: no one rank)
        and what ended (`relay`: the one `start_pool` gave)."""

    async def wait_ended(self, job: JobRecord, relay: Any, timeout: float) -> None:
        """Wait (at most `timeout` seconds) for stopped ranks to leave their loop."""

    async def cancel(self, job: JobRecord) -> None: ...


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class Cell:
    """One cell sent to a pool: which ranks are done, where its files and logs start."""

    number: int
    channel: DirectoryChannel
    log_offsets: dict[int, int]
    done: dict[int, bool] = field(default_factory=dict)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    interrupted: bool = False
    lost: str = ""


@dataclass
class Pool:
    """A pool of warm ranks: the job record its ranks were started from, and its life."""

    job: JobRecord
    key_hash: str
    idle_timeout: int
    state: str = STARTING
    reason: str = ""
    last_used: float = field(default_factory=time.time)
    cells: int = 0
    broken_rank: int | None = None
    current: Cell | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set once an ended pool's processes are gone (its GPUs are free then).
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    relay: PoolRelay | None = None
    #: Whether the backend is being asked about the ranks' health now.
    checking: bool = False

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def releases_at(self) -> float | None:
        """When an idle pool will be released (None: busy, ended, or never)."""
        if self.state != IDLE or not self.idle_timeout:
            return None
        return self.last_used + self.idle_timeout

    def waiting_for(self) -> str:
        """Why a starting pool's ranks have not all said hello ("" if not known)."""
        return self.relay.waiting_for if self.state == STARTING and self.relay else ""

    def to_model(self) -> dict[str, Any]:
        """The pool as the REST API shows it."""
        now = time.time()
        releases = self.releases_at()
        warn_before = min(WARN_BEFORE_S, self.idle_timeout // 2)
        return {
            "id": self.id,
            "kind": "pool",
            "user": self.job.user,
            "server_name": self.job.server_name,
            "name": self.job.name,
            "framework": self.job.framework,
            "workers": self.job.workers,
            "gpus_per_worker": self.job.gpus_per_worker,
            "gpus": list(self.job.gpus or []),
            "state": self.state,
            "reason": self.reason or self.waiting_for(),
            "created": _iso(self.job.created),
            "last_used": _iso(self.last_used),
            "idle_s": round(now - self.last_used, 1) if self.state == IDLE else 0.0,
            "idle_timeout": self.idle_timeout,
            "releases_at": _iso(releases),
            "warn_at": _iso(releases - warn_before) if releases else None,
            "cells": self.cells,
            "broken_rank": self.broken_rank,
        }


def parse_pool_request(body: Any) -> JobRequest:
    """Check a `POST api/pools` body (a job's fields without the payload)."""
    if not isinstance(body, dict):
        raise RequestError("body", "must be a JSON object")
    unknown = sorted(set(body) - set(POOL_FIELDS))
    if unknown:
        raise RequestError(unknown[0], f"unknown field (known: {', '.join(POOL_FIELDS)})")
    return parse_job_request({**body, "payload": base64.b64encode(b"pool").decode()})


class PoolManager:
    """Every pool this service runs; the only place pool states change."""

    def __init__(
        self,
        backend: PoolBackend,
        settings: JobsSettings,
        server_running: Callable[[str, str], Awaitable[bool | None]] | None = None,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.server_running = server_running
        self.pools: dict[str, Pool] = {}
        self._ticker: ioloop.PeriodicCallback | None = None
        self._servers_checked = 0.0

    # -- creation -------------------------------------------------------------------------------
    def idle_timeout(self, profile: dict[str, Any], catalog: ProfileCatalog, gpus: int) -> int:
        """The profile's `culling.pool_idle_timeout`, else the deployment's default (shorter
        for a pool holding GPUs)."""
        found = catalog.get(str(profile.get("slug", "")))
        if found is not None and found.culling.pool_idle_timeout is not None:
            return found.culling.pool_idle_timeout
        return self.settings.pool_gpu_idle_timeout if gpus else self.settings.pool_idle_timeout

    def held_gpus(self, user: str, jobs: list[JobRecord]) -> dict[str, str]:
        """GPU -> what holds it (a job or a live pool of the user)."""
        held = {gpu: f"job {job.id}" for job in jobs for gpu in job.gpus}
        for pool in self.pools.values():
            if pool.job.user == user and not pool.ended.is_set():
                held.update({gpu: f"pool {pool.id}" for gpu in pool.job.gpus})
        return held

    def live_pools(self, user: str) -> list[Pool]:
        return [p for p in self.pools.values() if p.live and p.job.user == user]

    def holdings(self) -> list[Holding]:
        """The GPUs of their own that pools hold until they end (their pods', on Kubernetes),
        as the quotas count them; nothing where pools use their server's GPUs."""
        if not self.backend.holds_gpus:
            return []
        return [
            Holding(
                p.job.user, frozenset(p.job.groups), p.job.workers * p.job.gpus_per_worker, False
            )
            for p in self.pools.values()
            if not p.ended.is_set()
        ]

    async def create(self, job: JobRecord, idle_timeout: int) -> tuple[Pool, str]:
        """Start a pool's ranks; the pool and its key (given out once)."""
        key = secrets.token_urlsafe(32)
        pool = Pool(job=job, key_hash=_hash(key), idle_timeout=idle_timeout)
        self.start_ticking()
        pool.relay = await self.backend.start_pool(
            job,
            on_frame=lambda frame: self._on_frame(pool, frame),
            on_lost=lambda rank, what: self._on_lost(pool, rank, what),
        )
        self.pools[job.id] = pool
        log.info("Started pool %s of %s: %d worker(s)", job.id, job.user, job.workers)
        return pool, key

    def start_ticking(self) -> None:
        if self._ticker is None:
            self._ticker = ioloop.PeriodicCallback(self.tick, TICK_S * 1000)
            self._ticker.start()

    def find(self, pool_id: str) -> Pool | None:
        return self.pools.get(pool_id)

    @staticmethod
    def key_matches(pool: Pool, key: str) -> bool:
        return hmac.compare_digest(_hash(key), pool.key_hash)

    # -- frames from the ranks ------------------------------------------------------------------
    def _on_frame(self, pool: Pool, frame: dict[str, Any]) -> None:
        assert pool.relay is not None
        if frame["kind"] == "hello" and pool.relay.connected == pool.job.workers:
            if pool.state == STARTING:
                pool.last_used = time.time()  # idle from now on
                self._set(pool, IDLE, "")
            pool.ready.set()
        elif frame["kind"] == "done":
            cell = pool.current
            if cell is None or int(frame.get("cell", -1)) != cell.number:
                return
            cell.done[int(frame["rank"])] = bool(frame.get("ok"))
            if len(cell.done) == pool.job.workers:
                self._finish_cell(pool, cell)

    async def _on_lost(self, pool: Pool, rank: int, what: str) -> None:
        if not pool.live:
            return
        doing = f"while running cell {pool.current.number}" if pool.current else "while idle"
        await self.stop(pool, BROKEN, f"rank {rank} ({what}) ended {doing}", rank)

    def _finish_cell(self, pool: Pool, cell: Cell) -> None:
        pool.current = None
        pool.last_used = time.time()
        if pool.state == BUSY:
            self._set(pool, IDLE, "")
        cell.finished.set()

    # -- cells ----------------------------------------------------------------------------------
    def refuse_unless_usable(self, pool: Pool) -> None:
        """409 with the reason when the pool runs no more cells."""
        if pool.state == BROKEN:
            raise Refusal(
                409,
                "pool",
                f"pool {pool.id} is broken: {pool.reason}; its GPUs are released. "
                "Start a new pool (%%distribute --warm --restart)",
            )
        if not pool.live:
            raise Refusal(409, "pool", f"pool {pool.id} is {pool.state}: {pool.reason}")

    async def run_cell(self, pool: Pool, payload: bytes) -> Cell:
        """Send a cell to every rank (once the pool is ready); the cell, under way."""
        self.refuse_unless_usable(pool)
        if not pool.ready.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(pool.ready.wait(), START_TIMEOUT_S)
            self.refuse_unless_usable(pool)
            if not pool.ready.is_set():
                await self.stop(pool, BROKEN, f"the ranks did not start in {START_TIMEOUT_S:.0f}s")
                self.refuse_unless_usable(pool)
        if pool.current is not None:
            raise Refusal(
                409, "pool", f"pool {pool.id} is still running cell {pool.current.number}"
            )
        pool.cells += 1
        number = pool.cells
        channel = self.backend.channel(pool.id)
        offsets = dict.fromkeys(range(pool.job.workers), 0)
        for rank in range(pool.job.workers):
            with contextlib.suppress(FileNotFoundError):
                offsets[rank] = os.lstat(channel.rank_log_path(rank)).st_size
        cell_channel = self.backend.write_cell(pool.id, number, payload)
        pool.current = Cell(number, cell_channel, offsets)
        self._set(pool, BUSY, "")
        assert pool.relay is not None
        pool.relay.send_cell(number, payload)
        return pool.current

    def interrupt(self, pool: Pool) -> bool:
        """Interrupt the ranks' cell under way; False when none runs."""
        cell = pool.current
        if cell is None or pool.relay is None:
            return False
        cell.interrupted = True
        pool.relay.interrupt()
        return True

    def outcome(self, pool: Pool, cell: Cell) -> dict[str, Any]:
        """A finished cell as the last line of its stream: rank 0's result, or the error of the
        rank that failed first (the reason, if the pool broke under it)."""
        channel = cell.channel
        model: dict[str, Any] = {
            "id": f"{pool.id}/{cell.number}",
            "user": pool.job.user,  # whose kernel may load the pickled exception
            "cell": cell.number,
            "interrupted": cell.interrupted,
        }
        error = channel.first_error()
        if cell.lost and error is None:
            error = {"type": "hubflow.PoolBroken", "message": cell.lost, "rank": pool.broken_rank}
        if error is not None:
            model.update(state="Failed", failing_rank=error.pop("rank", None), error=error)
            return model
        result = channel.read_result()
        model.update(state="Succeeded", result=base64.b64encode(result or b"").decode())
        return model

    # -- ending ---------------------------------------------------------------------------------
    async def stop(self, pool: Pool, state: str, reason: str, rank: int | None = None) -> None:
        """End a pool: record why, let its ranks leave their loop, then stop its processes."""
        if not pool.live:
            return
        self._set(pool, state, reason)
        pool.broken_rank = rank
        pool.ready.set()  # a cell waiting for the ranks learns why they will not come
        if pool.current is not None:
            pool.current.lost = reason
            cell, pool.current = pool.current, None
            cell.finished.set()
        if pool.relay is not None:
            pool.relay.send_stop()
            await self.backend.wait_ended(pool.job, pool.relay, STOP_GRACE_S)
            await pool.relay.close()
        await self.backend.cancel(pool.job)
        pool.ended.set()
        log.info("Pool %s of %s: %s (%s)", pool.id, pool.job.user, state, reason)

    def tick(self) -> None:
        """Release pools idle past their timeout; mark broken those whose ranks ended (as the
        backend sees them) or never started."""
        now = time.time()
        for pool in list(self.pools.values()):
            releases = pool.releases_at()
            if releases is not None and now >= releases:
                reason = f"released after {pool.idle_timeout}s idle"
                asyncio.ensure_future(self.stop(pool, STOPPED, reason))
            elif pool.state == STARTING and now - pool.job.created > START_TIMEOUT_S:
                reason = f"the ranks did not start in {START_TIMEOUT_S:.0f}s"
                asyncio.ensure_future(self.stop(pool, BROKEN, reason))
            elif pool.live and not pool.checking:
                asyncio.ensure_future(self._check(pool))
        if self.server_running is not None and now - self._servers_checked > SERVER_CHECK_S:
            self._servers_checked = now
            asyncio.ensure_future(self._stop_orphans())

    async def _check(self, pool: Pool) -> None:
        """Ask the backend whether the pool's ranks are fine; break the pool if not."""
        assert pool.relay is not None
        pool.checking = True
        try:
            broken = await self.backend.health(pool.job, pool.relay)
        except Exception as e:  # noqa: BLE001 (the next tick asks again)
            log.warning("Pool %s: cannot check its ranks: %s", pool.id, e)
            broken = None
        finally:
            pool.checking = False
        if broken is None:
            return
        rank, what = broken
        if rank is None:
            await self.stop(pool, BROKEN, what)
        else:
            await self._on_lost(pool, rank, what)

    async def _stop_orphans(self) -> None:
        """Stop the pools whose server has stopped (its GPUs may go to another server)."""
        assert self.server_running is not None
        for pool in [p for p in self.pools.values() if p.live]:
            if await self.server_running(pool.job.user, pool.job.server_name) is False:
                await self.stop(pool, STOPPED, "its server stopped")

    def busy_pools(self) -> list[Pool]:
        """The pools starting or running a cell: unfinished work that keeps their server (an
        idle pool does not)."""
        return [p for p in self.pools.values() if p.state in (STARTING, BUSY)]

    @staticmethod
    def _set(pool: Pool, state: str, reason: str) -> None:
        pool.state, pool.reason = state, reason


# -- the REST API ---------------------------------------------------------------------------------
async def server_running(user: str, server_name: str) -> bool | None:
    """Whether the user's server runs now, as the hub says (None: the hub could not be asked)."""
    try:
        await HubAPI().server_record(user, server_name)
    except ServerUnavailable as e:
        return None if str(e).startswith("cannot look up") else False
    return True


class PoolAPIHandler(APIHandler):
    """The pools of this service (local processes, or Kubeflow jobs in Kubernetes mode)."""

    #: Requests here carry small JSON bodies (a cell's payload is read whole: PoolCellHandler).
    takes_payload = False

    @property
    def pools(self) -> PoolManager:
        manager: PoolManager | None = self.settings.get("pools")
        if manager is None:
            raise web.HTTPError(501, "this jobs service runs no warm pools")
        return manager

    def find_pool(self, pool_id: str) -> Pool:
        """The pool, if the caller may see it; 404 otherwise."""
        pool = self.pools.find(pool_id)
        if pool is None or not self.caller.may_see(pool.job.user):
            raise web.HTTPError(404, f"no pool {pool_id}")
        return pool


class PoolListHandler(PoolAPIHandler):
    async def get(self) -> None:
        """The caller's pools (an admin's: everyone's, or ?user=NAME), oldest first."""
        user = self.get_argument("user", None) if self.caller.is_admin else self.caller.name
        pools = [p for p in self.pools.pools.values() if user is None or p.job.user == user]
        pools.sort(key=lambda p: p.job.created)
        self.write_json({"pools": [p.to_model() for p in pools]})

    async def post(self) -> None:
        """Start a pool for one of the caller's servers, after the checks a job gets."""
        manager = self.pools
        if not self.caller.may_submit:
            raise web.HTTPError(403, "this token may not start pools (custom:hubflow:jobs:submit)")
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            raise RequestError("body", "must be JSON") from None
        request = parse_pool_request(body)
        try:
            server = await HubAPI().server_record(self.caller.name, request.server_name)
        except ServerUnavailable as e:
            raise Refusal(409, "server_name", str(e)) from None
        catalog = self.scheduler.catalog()
        quota = catalog.effective_quota(self.caller.groups)
        check_hard_limits(quota, request)
        jobs = self.store.list(user=self.caller.name, states=[JobState.PENDING, JobState.RUNNING])
        try:
            running = len(jobs) + len(manager.live_pools(self.caller.name))
            check_job_start(quota, running_jobs=running, workers=request.workers)
        except QuotaError as e:
            raise quota_refusal(quota, e) from None
        spec = manager.backend.admit(request, server)
        if manager.backend.holds_gpus:  # the pool's pods get GPUs of their own
            await self.check_gpu_quota(quota, request)
            free: list[str] = []
        else:  # some of the server's GPUs, which no job or other pool holds
            held = manager.held_gpus(self.caller.name, jobs)
            free = [gpu for gpu in server.gpus if gpu not in held]
            if len(free) < request.total_gpus:
                users = ", ".join(sorted({held[g] for g in server.gpus if g in held}))
                raise Refusal(
                    409,
                    "gpus_per_worker",
                    f"{request.total_gpus} GPU(s) asked, {len(free)} free: "
                    f"the others are held by {users}",
                )
        job = JobRecord.for_request(
            self.caller.name,
            self.caller.groups,
            request,
            server,
            free[: request.total_gpus],
            spec,
            state=JobState.PENDING.value,
        )
        timeout = manager.idle_timeout(server.profile, catalog, request.total_gpus)
        pool, key = await manager.create(job, timeout)
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{pool.id}")
        self.write_json({**pool.to_model(), "key": key}, status=201)

    async def check_gpu_quota(self, quota: UserQuota, request: JobRequest) -> None:
        """Refuse (403) a pool whose own GPUs would pass the user's or a group's GPU quota, with
        what servers, jobs and pools hold now (a pool is not queued)."""
        if not request.total_gpus:
            return
        check_hard_limits(quota, request, request.total_gpus)
        await self.scheduler.refresh_servers()
        active = self.store.list(states=[JobState.PENDING, JobState.RUNNING])
        usage = self.scheduler.usage(self.caller.name, self.caller.groups, active)
        try:
            check_gpus(
                quota,
                running_gpus=usage.gpus,
                requested_gpus=request.total_gpus,
                group_gpus=usage.group_gpus,
            )
        except QuotaError as e:
            raise quota_refusal(quota, e) from None


class PoolHandler(PoolAPIHandler):
    async def get(self, pool_id: str) -> None:
        """One pool: state, reason, age, GPUs, idle time, when it will be released."""
        self.write_json(self.find_pool(pool_id).to_model())

    async def delete(self, pool_id: str) -> None:
        """Stop the pool and its processes."""
        pool = self.find_pool(pool_id)
        await self.pools.stop(pool, STOPPED, f"stopped by {self.caller.name}")
        self.write_json(pool.to_model())


class PoolKeyRenewHandler(PoolAPIHandler):
    async def post(self, pool_id: str) -> None:
        """A new key for the caller's own live pool (a restarted kernel takes its pool over);
        the old key stops working."""
        pool = self.find_pool(pool_id)
        if pool.job.user != self.caller.name:
            raise web.HTTPError(403, "only the pool's owner may take it over")
        self.pools.refuse_unless_usable(pool)
        key = secrets.token_urlsafe(32)
        pool.key_hash = _hash(key)
        self.write_json({**pool.to_model(), "key": key})


class PoolKeyHandler(PoolAPIHandler):
    """Requests that carry a pool's key instead of a JupyterHub token. Their body is read whole
    before `prepare` (tornado's own buffering, bounded by the server's max_body_size), not
    streamed as APIHandler's are after a token check."""

    _stream_request_body = False
    pool: Pool

    async def prepare(self) -> None:
        scheme, _, key = self.request.headers.get("Authorization", "").partition(" ")
        pool = self.pools.find(self.path_kwargs.get("pool_id", ""))
        if (
            scheme.lower() != "pool-key"
            or pool is None
            or not self.pools.key_matches(pool, key.strip())
        ):
            raise web.HTTPError(
                403, "this request needs the key of the pool (Authorization: pool-key KEY)"
            )
        self.pool = pool


class PoolCellHandler(PoolKeyHandler):
    async def post(self, pool_id: str) -> None:
        """Run a cell (the body: a cloudpickled payload) on every rank; NDJSON: log lines
        {"rank", "line"}, progress {"progress"}, and last the outcome {"state", ...}."""
        manager = self.pools
        payload = self.request.body
        if not payload or len(payload) > manager.backend.max_payload_bytes:
            raise RequestError(
                "payload", f"must hold 1 byte to {manager.backend.max_payload_bytes} bytes"
            )
        cell = await manager.run_cell(self.pool, payload)
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        positions = dict(cell.log_offsets)
        channel = cell.channel
        shown: dict[str, Any] | None = None
        while True:
            done = cell.finished.is_set()
            for rank, offset in positions.items():
                chunk = manager.backend.read_log(pool_id, rank, offset, final=done)
                for _, line in chunk.lines:
                    self.write(json.dumps({"rank": rank, "line": line}) + "\n")
                positions[rank] = chunk.next_offset
            progress = channel.read_progress()
            if progress and progress != shown:
                shown = progress
                self.write(json.dumps({"progress": progress}) + "\n")
            if done:
                break
            try:
                await self.flush()
            except StreamClosedError:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(cell.finished.wait(), CELL_FOLLOW_S)
        outcome = {**manager.outcome(self.pool, cell), "pool": self.pool.to_model()}
        self.write(json.dumps(outcome) + "\n")
        self.finish()


class PoolInterruptHandler(PoolKeyHandler):
    async def post(self, pool_id: str) -> None:
        """Interrupt the cell under way on every rank (KeyboardInterrupt in its code)."""
        interrupted = self.pools.interrupt(self.pool)
        self.write_json({**self.pool.to_model(), "interrupted": interrupted})


def pool_routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """The `api/pools` routes under the service prefix."""
    pool = r"(?P<pool_id>[0-9a-f]{12})"
    return [
        (rf"{prefix}/api/pools/?", PoolListHandler),
        (rf"{prefix}/api/pools/{pool}/?", PoolHandler),
        (rf"{prefix}/api/pools/{pool}/cells", PoolCellHandler),
        (rf"{prefix}/api/pools/{pool}/interrupt", PoolInterruptHandler),
        (rf"{prefix}/api/pools/{pool}/key", PoolKeyRenewHandler),
    ]
