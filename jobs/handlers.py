"""The jobs REST API (JSON under the service prefix); see docs/launcher.md for the reference."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError

from hubflow.hub.hubapi import HubAPI, ServerUnavailable
from hubflow.jobs.auth import Caller, identify
from hubflow.jobs.backend import JobBackend, StartError
from hubflow.jobs.limits import (
    SMALL_BODY_BYTES,
    Limits,
    RequestPace,
    UserSlots,
    check_queue_room,
    submit_body_bytes,
)
from hubflow.jobs.models import JobRequest, RequestError
from hubflow.jobs.quota import Refusal
from hubflow.jobs.scheduler import Scheduler
from hubflow.jobs.store import DuplicateKey, JobRecord, JobStore
from hubflow.jobs.submitbody import SubmitBody
from hubflow.jobs.validation import parse_count, parse_flag, parse_offsets, parse_user
from hubflow.launcher.contract import JobState

T = TypeVar("T")

#: How long a request refused by a per-user limit (429) waits before its answer (Retry-After).
TOO_MANY_DELAY_S = 1
#: How often a followed log stream looks for new lines.
FOLLOW_INTERVAL_S = 0.1
#: The work that counts as one more request against the caller's request rate: this many jobs
#: in a list, this many bytes of log lines sent.
JOBS_PER_TURN = 10
LOG_BYTES_PER_TURN = 64 * 2**10
#: The most log lines a logs request sends before it leaves the loop to other requests.
LINES_PER_STEP = 1000


#: The `error` word of each status an answer may have (the OpenAPI document lists them).
ERROR_WORDS = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "unplaceable",
    429: "too_many",
    502: "backend_failed",
}


def error_model(status: int, message: str, field: str | None) -> dict[str, Any]:
    """The JSON body of every error: its status, a word for it, the words, the field at fault."""
    return {
        "status": status,
        "error": ERROR_WORDS.get(status, "error"),
        "message": message,
        "field": field,
    }


@web.stream_request_body
class APIHandler(web.RequestHandler):
    """JSON in and out, every request authenticated by the caller's JupyterHub token.

    Bodies are streamed in as they arrive (never into tornado's buffer as well; `take` keeps
    each chunk, in `request.body` unless a handler parses it as it comes) and bounded by
    `body_limit()`: what a submit with the backend's largest payload needs, or SMALL_BODY_BYTES
    for a handler that `takes_payload` False.
    """

    caller: Caller
    #: Whether requests here may carry a job's payload (else their body is SMALL_BODY_BYTES).
    takes_payload = True
    #: The caller whose upload slot this request holds, while it holds one.
    uploader: str | None = None
    #: The bytes of the body received so far.
    received = 0

    @property
    def store(self) -> JobStore:
        return self.settings["store"]  # type: ignore[no-any-return]

    @property
    def backend(self) -> JobBackend:
        return self.settings["backend"]  # type: ignore[no-any-return]

    @property
    def scheduler(self) -> Scheduler:
        return self.settings["scheduler"]  # type: ignore[no-any-return]

    @property
    def limits(self) -> Limits:
        return self.settings["limits"]  # type: ignore[no-any-return]

    def body_limit(self) -> int:
        """The largest body this request may carry."""
        if self.takes_payload:
            return submit_body_bytes(self.backend.max_payload_bytes)
        return SMALL_BODY_BYTES

    async def prepare(self) -> None:
        # a bytearray serves as the body's bytes and grows in place, without copies
        self.request.body = bytearray()  # type: ignore[assignment]
        limit = self.body_limit()
        declared = self.request.headers.get("Content-Length", "0")
        if not declared.isascii() or not declared.isdigit() or len(declared) > 18:
            raise RequestError("Content-Length", "must be a number of bytes")
        if int(declared) > limit:
            raise self.too_large(int(declared), limit)
        connection = self.request.connection
        assert isinstance(connection, HTTP1Connection)
        # tornado's own limit (a bare 400) stays far above ours: ours answers (data_received)
        connection.set_max_body_size(2 * limit)
        hub_auth: HubAuth = self.settings["hub_auth"]
        self.caller = await identify(self, hub_auth)
        pace: RequestPace = self.settings["request_pace"]
        wait = await self.throttled(lambda: pace.turn(self.caller.name, time.monotonic()))
        if wait:  # past the user's request rate: their turn comes later
            await asyncio.sleep(wait)
        if limit > SMALL_BODY_BYTES:
            uploads: UserSlots = self.settings["upload_slots"]
            await self.throttled(lambda: uploads.acquire(self.caller.name))
            self.uploader = self.caller.name

    def data_received(self, chunk: bytes) -> None:
        """Take the body as it arrives; past the limit, or refused by `take`, answer at once
        and drop the rest."""
        if self._finished:
            return
        self.received += len(chunk)
        try:
            if self.received > self.body_limit():
                raise self.too_large(self.received, self.body_limit())
            self.take(chunk)
        except (Refusal, RequestError) as refusal:
            self.request.body = b""
            self.log_exception(type(refusal), refusal, None)
            status = refusal.status if isinstance(refusal, Refusal) else 400
            self.send_error(status, exc_info=(type(refusal), refusal, None))

    def take(self, chunk: bytes) -> None:
        """Keep a chunk of the body (into `request.body`)."""
        self.request.body += chunk  # a bytearray: grows in place

    def on_finish(self) -> None:
        self._release_upload()

    def on_connection_close(self) -> None:
        self._release_upload()
        super().on_connection_close()

    def _release_upload(self) -> None:
        if self.uploader is not None:
            uploads: UserSlots = self.settings["upload_slots"]
            uploads.release(self.uploader)
            self.uploader = None

    def too_large(self, size: int, limit: int) -> Refusal:
        said = f"the body holds {size} bytes, at most {limit} are accepted"
        if limit > SMALL_BODY_BYTES:  # a submit: its payload is too large
            return Refusal(413, "payload", f"{said} (save large data in the workspace instead)")
        return Refusal(413, "body", said)

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API: no cookies, no XSRF."""

    def write_json(self, model: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(model))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        model = error_model(status_code, self._reason, _http_error_field(exc))
        if isinstance(exc, web.HTTPError) and exc.log_message:
            model["message"] = exc.log_message % exc.args if exc.args else exc.log_message
        if isinstance(exc, RequestError):
            model = error_model(400, str(exc), exc.field)
        if isinstance(exc, Refusal):
            model = {**error_model(exc.status, str(exc), exc.field), **exc.to_model()}
        if model["status"] == 429:
            self.set_header("Retry-After", str(TOO_MANY_DELAY_S))
        self.set_status(model["status"])
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(model))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """A refused request is an answer, not a server error: one line, no traceback."""
        refused = isinstance(value, RequestError | Refusal) or (
            isinstance(value, web.HTTPError) and value.status_code < 500
        )
        if refused:
            caller = getattr(self, "caller", None)
            user = caller.name if caller else "-"
            self.settings["log"].info(
                "Refused %s %s of %s: %s", self.request.method, self.request.path, user, value
            )
        else:
            super().log_exception(typ, value, tb)

    def allowed_methods(self) -> list[str]:
        """The HTTP methods this handler answers."""
        base = web.RequestHandler
        return [
            method
            for method in self.SUPPORTED_METHODS
            if getattr(type(self), method.lower()) is not getattr(base, method.lower())
        ]

    def charge(self, turns: float) -> None:
        """Count this request's work as `turns` more requests against the caller's rate."""
        pace: RequestPace = self.settings["request_pace"]
        pace.charge(self.caller.name, turns, time.monotonic())

    async def throttled(self, check: Callable[[], T]) -> T:
        """Run a per-user limit's check (its answer); a 429 is answered only after
        TOO_MANY_DELAY_S, so a user who floods waits for their refusals instead of the service
        (and everyone else) spending its time on them."""
        try:
            return check()
        except Refusal as refusal:
            if refusal.status == 429:
                await asyncio.sleep(TOO_MANY_DELAY_S)
            raise

    @overload
    def query(self, name: str) -> str | None: ...

    @overload
    def query(self, name: str, default: str) -> str: ...

    def query(self, name: str, default: str | None = None) -> str | None:
        """A query parameter as sent (tornado's get_argument turns control characters into
        spaces and strips them, hiding what was sent), its last value when repeated; `default`
        when it is absent (an empty value is a value)."""
        values = self.request.query_arguments.get(name)
        if not values:
            return default
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(name, "must be UTF-8 text") from None

    async def cancel(self, job_id: str) -> None:
        """Cancel the job and answer with it."""
        job = await self.scheduler.cancel(self.find_job(job_id), by=self.caller.name)
        self.write_json(self.job_model(job))

    def find_job(self, job_id: str) -> JobRecord:
        """The job, if the caller may see it; 404 otherwise (no existence leak)."""
        job = self.store.get(job_id)
        if job is None or not self.caller.may_see(job.user):
            raise Refusal(404, "job_id", f"no job {job_id}")
        return job

    def job_model(self, job: JobRecord) -> dict[str, Any]:
        progress = self.backend.channel(job.id).read_progress() if job.started else None
        return as_read_by(job.to_model(progress), self.caller.name)


def as_read_by(model: dict[str, Any], reader: str) -> dict[str, Any]:
    """A job's model as `reader` gets it: the failing rank's pickled exception goes to the job's
    owner only (loading it runs the owner's code); anyone else (an admin) gets its type, message
    and traceback as text."""
    error = model.get("error")
    if reader != model["user"] and error and "exception" in error:
        model["error"] = {key: value for key, value in error.items() if key != "exception"}
    return model


def _http_error_field(exc: BaseException | None) -> str | None:
    """The parameter a tornado HTTPError is about: a missing or badly encoded argument."""
    if isinstance(exc, web.MissingArgumentError):
        return exc.arg_name
    invalid = "Invalid unicode in "  # tornado's words for an argument that is not UTF-8
    if isinstance(exc, web.HTTPError) and (exc.log_message or "").startswith(invalid):
        return (exc.log_message or "")[len(invalid) :].split(":", 1)[0]
    if isinstance(exc, web.HTTPError) and exc.status_code in (401, 403):
        return "Authorization"
    return None


class JobListHandler(APIHandler):
    #: A submit's body, parsed as it arrives.
    submit_body: SubmitBody | None = None

    def body_limit(self) -> int:
        return super().body_limit() if self.request.method == "POST" else SMALL_BODY_BYTES

    def take(self, chunk: bytes) -> None:
        if self.request.method != "POST":
            return super().take(chunk)
        if self.submit_body is None:
            self.submit_body = SubmitBody(self.backend.max_payload_bytes)
        self.submit_body.feed(chunk)

    async def get(self) -> None:
        """List the caller's jobs (an admin's: everyone's, or ?user=NAME)."""
        asked = self.query("user")
        asked = None if asked is None else parse_user(asked)  # checked even where ignored
        user = asked if self.caller.is_admin else self.caller.name
        jobs = self.store.list(user=user)
        self.write_json({"jobs": [self.job_model(job) for job in jobs]})
        self.charge(len(jobs) / JOBS_PER_TURN)

    async def post(self) -> None:
        """Submit a job: check the body, the server, the quota; start it or queue it."""
        if self._finished:  # refused while its body came in
            return
        if not self.caller.may_submit:
            raise web.HTTPError(403, "this token may not submit jobs (custom:hubflow:jobs:submit)")
        # parsed as it came in (the payload decoded chunk by chunk): only its end is left
        streamed = self.submit_body or SubmitBody(self.backend.max_payload_bytes)
        self.submit_body = None
        request = await asyncio.to_thread(streamed.request)
        del streamed
        if self.submitted_before(request):
            return
        await self.throttled(
            lambda: check_queue_room(self.store, self.caller.name, self.limits.max_queued_jobs)
        )
        try:
            server = await HubAPI().server_record(self.caller.name, request.server_name)
        except ServerUnavailable as e:
            raise Refusal(409, "server_name", str(e)) from None
        spec = await self.scheduler.admit(self.caller.groups, request, server)
        job = JobRecord.for_request(
            self.caller.name,
            self.caller.groups,
            request,
            server,
            server.gpus[: request.total_gpus],
            spec,
            client_key=request.client_key,
        )
        try:
            # writing the payload (up to hundreds of MiB) leaves the loop to other requests
            await asyncio.to_thread(self.backend.prepare, job.id, request.payload)
        except BaseException:
            self.backend.discard(job.id)
            raise
        try:
            job = self.scheduler.enter(job)
        except StartError as e:
            raise web.HTTPError(502, str(e)) from None
        except DuplicateKey:  # the same submit, retried at the same moment, was first
            if self.submitted_before(request):
                return
            raise
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{job.id}")
        self.write_json(self.job_model(job), status=201)

    def submitted_before(self, request: JobRequest) -> bool:
        """Answer a retried submit (its client key names an earlier one) with the job the first
        try made, 200; refuse the key reused for another job. False: a new submission."""
        if request.client_key is None:
            return False
        earlier = self.store.by_client_key(self.caller.name, request.client_key)
        if earlier is None:
            return False
        asked = (request.server_name, request.name, request.framework, request.workers)
        if asked + (request.gpus_per_worker,) != (
            earlier.server_name,
            earlier.name,
            earlier.framework,
            earlier.workers,
            earlier.gpus_per_worker,
        ):
            raise Refusal(409, "client_key", f"already names job {earlier.id}, another submission")
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{earlier.id}")
        self.write_json(self.job_model(earlier), status=200)
        return True


class JobHandler(APIHandler):
    takes_payload = False

    async def get(self, job_id: str) -> None:
        """One job: state, reason, timestamps, exit codes, failing rank, error, progress."""
        self.write_json(self.job_model(self.find_job(job_id)))

    async def delete(self, job_id: str) -> None:
        """Cancel the job."""
        await self.cancel(job_id)


class CancelHandler(APIHandler):
    takes_payload = False

    async def post(self, job_id: str) -> None:
        """Cancel the job (the same as DELETE on the job)."""
        await self.cancel(job_id)


class NotFoundHandler(APIHandler):
    """Any path the service does not serve: a JSON 404."""

    takes_payload = False

    def prepare(self) -> None:  # type: ignore[override]
        raise Refusal(404, "path", f"no such API path: {self.request.path[:200]}")


class ResultHandler(APIHandler):
    takes_payload = False

    async def get(self, job_id: str) -> None:
        """Rank 0's return value and pulled variables of a succeeded job: cloudpickled (base64)
        for the job's owner; as text (each value's repr) for anyone else, who would run the
        owner's code by loading the pickle."""
        job = self.find_job(job_id)
        if job.state != JobState.SUCCEEDED.value:
            raise web.HTTPError(
                409, f"job {job_id} is {job.state}: only a Succeeded job has a result"
            )
        if self.caller.name != job.user:
            text = self.backend.channel(job.id).read_summary()
            if text is None:
                raise web.HTTPError(404, f"job {job_id} left no result")
            self.write_json({"id": job.id, "encoding": "text", "result": text})
            return
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


class LogsHandler(APIHandler):
    takes_payload = False
    #: Which of the followed ranks comes first in the next step (they take turns).
    first_rank = 0

    async def get(self, job_id: str) -> None:
        """Log lines as NDJSON {"rank", "offset" (to resume from), "line"}; `follow=1` streams
        until the job has ended and every line was sent."""
        follow = parse_flag(self.query("follow", "0"), "follow")
        follows: UserSlots = self.settings["follow_slots"]
        # a follow past the limit is refused first, before it costs a lookup
        if follow:
            await self.throttled(lambda: follows.acquire(self.caller.name))
        try:
            job = self.find_job(job_id)
            rank_arg = self.query("rank")
            ranks = list(range(job.workers))
            if rank_arg is not None:
                ranks = [parse_count(rank_arg, "rank", job.workers)]
            offsets = parse_offsets(self.query("offsets", ""), job.workers)
            offset = parse_count(self.query("offset", "0"), "offset")
            positions = {rank: offsets.get(rank, offset) for rank in ranks}
            await self._stream(job, positions, follow)
        finally:
            if follow:
                follows.release(self.caller.name)

    async def _stream(self, job: JobRecord, positions: dict[int, int], follow: bool) -> None:
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
                if job.id not in self.scheduler.unfinished:  # it may have ended: read it again
                    job = self.store.get(job.id) or job
        self.finish()

    def _send_lines(self, job: JobRecord, positions: dict[int, int], final: bool) -> bool:
        """Send what the ranks' logs hold past `positions` (brought forward), at most
        LINES_PER_STEP lines, the ranks taking turns at coming first; whether anything was."""
        ranks = list(positions)
        first = self.first_rank % len(ranks)
        budget, progress = LINES_PER_STEP, 0
        for rank in ranks[first:] + ranks[:first]:
            offset = positions[rank]
            chunk = self.backend.read_log(job.id, rank, offset, final, self.limits.max_log_line)
            lines = chunk.lines[:budget]
            for end, line in lines:
                self.write(json.dumps({"rank": rank, "offset": end, "line": line}) + "\n")
            budget -= len(lines)
            # past the budget, the rank goes on from the end of its last line sent
            positions[rank] = chunk.next_offset if len(lines) == len(chunk.lines) else lines[-1][0]
            progress += positions[rank] - offset
            if not budget:
                self.first_rank = ranks.index(rank) + 1
                break
        self.charge(progress / LOG_BYTES_PER_TURN)
        return progress > 0
