"""The jobs REST API (JSON under the service prefix); see docs/launcher.md for the reference."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.iostream import StreamClosedError

from hubflow.jobs.auth import Caller, identify
from hubflow.jobs.backend import JobBackend, StartError
from hubflow.jobs.hubapi import HubAPI, ServerUnavailable
from hubflow.jobs.models import RequestError, parse_job_request
from hubflow.jobs.quota import Refusal, check_hard_limits
from hubflow.jobs.scheduler import Scheduler
from hubflow.jobs.store import Job, JobStore, new_job_id
from hubflow.launcher.contract import JobState

#: How often a followed log stream looks for new lines.
FOLLOW_INTERVAL_S = 0.1


class APIHandler(web.RequestHandler):
    """JSON in and out, every request authenticated by the caller's JupyterHub token."""

    caller: Caller

    @property
    def store(self) -> JobStore:
        return self.settings["store"]  # type: ignore[no-any-return]

    @property
    def backend(self) -> JobBackend:
        return self.settings["backend"]  # type: ignore[no-any-return]

    @property
    def scheduler(self) -> Scheduler:
        return self.settings["scheduler"]  # type: ignore[no-any-return]

    async def prepare(self) -> None:
        hub_auth: HubAuth = self.settings["hub_auth"]
        self.caller = await identify(self, hub_auth)

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API: no cookies, no XSRF."""

    def write_json(self, model: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(model))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        model: dict[str, Any] = {"status": status_code, "message": self._reason}
        if isinstance(exc, web.HTTPError) and exc.log_message:
            model["message"] = exc.log_message % exc.args if exc.args else exc.log_message
        if isinstance(exc, RequestError):
            model.update(status=400, message=str(exc), field=exc.field)
        if isinstance(exc, Refusal):
            model = exc.to_model()
        self.set_status(model["status"])
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(model))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """A refused request is an answer, not a server error."""
        if isinstance(value, RequestError | Refusal):
            self.settings["log"].info(
                "%s %s refused: %s", self.request.method, self.request.path, value
            )
        else:
            super().log_exception(typ, value, tb)

    def find_job(self, job_id: str) -> Job:
        """The job, if the caller may see it; 404 otherwise (no existence leak)."""
        job = self.store.get(job_id)
        if job is None or not self.caller.may_see(job.user):
            raise web.HTTPError(404, f"no job {job_id}")
        return job

    def job_model(self, job: Job) -> dict[str, Any]:
        progress = self.backend.channel(job.id).read_progress() if job.started else None
        return job.to_model(progress)


class JobListHandler(APIHandler):
    async def get(self) -> None:
        """List the caller's jobs (an admin's: everyone's, or ?user=NAME)."""
        user = self.get_argument("user", None) if self.caller.is_admin else self.caller.name
        jobs = self.store.list(user=user)
        self.write_json({"jobs": [self.job_model(job) for job in jobs]})

    async def post(self) -> None:
        """Submit a job: check the body, the server, the quota; start it or queue it."""
        if not self.caller.may_submit:
            raise web.HTTPError(403, "this token may not submit jobs (custom:hubflow:jobs:submit)")
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            raise RequestError("body", "must be JSON") from None
        request = parse_job_request(body)
        if len(request.payload) > self.backend.max_payload_bytes:
            raise RequestError(
                "payload",
                f"{len(request.payload)} bytes: this hub's jobs take at most "
                f"{self.backend.max_payload_bytes} (save large data in the workspace instead)",
            )
        try:
            server = await HubAPI().server_info(self.caller.name, request.server_name)
        except ServerUnavailable as e:
            raise Refusal(409, "server_name", str(e)) from None
        quota = self.scheduler.catalog().effective_quota(self.caller.groups)
        check_hard_limits(quota, request)
        spec = self.backend.admit(request, server)
        job = Job(
            id=new_job_id(),
            user=self.caller.name,
            server_name=request.server_name,
            name=request.name,
            framework=request.framework,
            workers=request.workers,
            gpus_per_worker=request.gpus_per_worker,
            gpus=server.gpus[: request.total_gpus],
            groups=self.caller.groups,
            workspace=server.workspace,
            environment=server.environment,
            spec=spec,
            created=time.time(),
        )
        try:
            job = self.scheduler.submit(job, request.payload)
        except StartError as e:
            raise web.HTTPError(502, str(e)) from None
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{job.id}")
        self.write_json(self.job_model(job), status=201)


class JobHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        """One job: state, reason, timestamps, exit codes, failing rank, error, progress."""
        self.write_json(self.job_model(self.find_job(job_id)))

    async def delete(self, job_id: str) -> None:
        """Cancel the job."""
        job = await self.scheduler.cancel(self.find_job(job_id), by=self.caller.name)
        self.write_json(self.job_model(job))


class CancelHandler(JobHandler):
    async def post(self, job_id: str) -> None:
        """Cancel the job (the same as DELETE)."""
        await self.delete(job_id)


class ResultHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        """Rank 0's return value and pulled variables (cloudpickled, base64) of a succeeded job."""
        job = self.find_job(job_id)
        if job.state != JobState.SUCCEEDED.value:
            raise web.HTTPError(
                409, f"job {job_id} is {job.state}: only a Succeeded job has a result"
            )
        data = self.backend.channel(job.id).read_result()
        if data is None:
            raise web.HTTPError(404, f"job {job_id} left no result")
        self.write_json(
            {
                "id": job.id,
                "encoding": "cloudpickle+base64",
                "result": base64.b64encode(data).decode(),
            }
        )


def parse_offsets(text: str) -> dict[int, int]:
    """'0:120,1:80' -> {0: 120, 1: 80}; a bad item raises RequestError."""
    offsets = {}
    for item in filter(None, text.split(",")):
        rank, sep, offset = item.partition(":")
        if not sep or not rank.isdigit() or not offset.isdigit():
            raise RequestError("offsets", f"{item!r}: must look like RANK:OFFSET")
        offsets[int(rank)] = int(offset)
    return offsets


class LogsHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        """Log lines as NDJSON {"rank", "offset" (to resume from), "line"}; `follow=1` streams
        until the job has ended and every line was sent."""
        job = self.find_job(job_id)
        rank_arg = self.get_argument("rank", None)
        if rank_arg is not None and (not rank_arg.isdigit() or int(rank_arg) >= job.workers):
            raise RequestError("rank", f"must be an integer from 0 to {job.workers - 1}")
        ranks = [int(rank_arg)] if rank_arg is not None else list(range(job.workers))
        offsets = parse_offsets(self.get_argument("offsets", ""))
        offset_arg = self.get_argument("offset", "0")
        if not offset_arg.isdigit():
            raise RequestError("offset", "must be an integer ≥ 0")
        positions = {rank: offsets.get(rank, int(offset_arg)) for rank in ranks}
        follow = self.get_argument("follow", "0") in ("1", "true", "yes")
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        while True:
            finished = JobState(job.state).finished
            sent = self._send_lines(job, positions, final=finished)
            if not sent and (finished or not follow):
                break
            try:
                await self.flush()
            except StreamClosedError:
                return
            if not sent:
                await asyncio.sleep(FOLLOW_INTERVAL_S)
                job = self.store.get(job_id) or job
        self.finish()

    def _send_lines(self, job: Job, positions: dict[int, int], final: bool) -> bool:
        sent = False
        for rank, offset in positions.items():
            chunk = self.backend.read_log(job.id, rank, offset, final)
            for end, line in chunk.lines:
                self.write(json.dumps({"rank": rank, "offset": end, "line": line}) + "\n")
                sent = True
            positions[rank] = chunk.next_offset
        return sent
