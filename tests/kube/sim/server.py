"""The HTTP API server (tornado): discovery, resource verbs, watch, pod logs, /_sim/ controls."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import tornado.iostream
import tornado.web

from tests.kube.sim.api import Api
from tests.kube.sim.errors import ApiError, bad_request
from tests.kube.sim.faults import Fault, Faults
from tests.kube.sim.kubelet import Kubelet
from tests.kube.sim.resources import ResourceType
from tests.kube.sim.watch import Watcher, gone_event

Obj = dict[str, Any]
TRUE = ("true", "True", "1")
VERSION = {
    "major": "1", "minor": "37", "gitVersion": "v1.37.0-sim", "gitCommit": "", "gitTreeState": "clean",
    "buildDate": "", "goVersion": "", "compiler": "gc", "platform": "linux/amd64",
}  # fmt: skip


@dataclass
class Target:
    """What a resource URL names: type, namespace (None: all), name, subresource."""

    rtype: ResourceType
    namespace: str | None
    name: str
    subresource: str


@dataclass
class Context:
    """Everything the handlers share."""

    api: Api
    faults: Faults
    kubelet: Kubelet
    token: str
    bookmark_every: float
    stopping: asyncio.Event
    default_watch_timeout: float = 1800.0


class Handler(tornado.web.RequestHandler):
    """Base: bearer-token check, Status errors, JSON bodies."""

    ctx: Context

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx

    def prepare(self) -> None:
        if (
            self.ctx.token
            and self.request.headers.get("Authorization") != f"Bearer {self.ctx.token}"
        ):
            self.fail(ApiError(401, "Unauthorized", "Unauthorized"))
            raise tornado.web.Finish()

    def send(self, body: Any, code: int = 200) -> None:
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def fail(self, error: ApiError) -> None:
        for name, value in error.headers.items():
            self.set_header(name, value)
        self.send(error.status(), error.code)

    def body(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as error:
            raise bad_request(
                f"the body of the request was in an unknown format: {error}"
            ) from None


class DiscoveryHandler(Handler):
    """/api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version}, /version."""

    def get(self, path: str) -> None:
        registry = self.ctx.api.registry
        parts = [p for p in path.split("/") if p]
        doc: Obj | None
        if parts == ["version"]:
            doc = VERSION
        elif parts == ["api"]:
            address = f"{self.request.host}"
            doc = {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": address}
                ],
            }
        elif parts == ["api", "v1"]:
            doc = registry.resource_list("", "v1")
        elif parts == ["apis"]:
            doc = registry.group_list()
        elif len(parts) == 2:
            doc = registry.group_doc(parts[1])
        else:
            doc = registry.resource_list(parts[1], parts[2])
        if doc is None:
            self.fail(ApiError(404, "NotFound", "the server could not find the requested resource"))
        else:
            self.send(doc)


class ResourceHandler(Handler):
    """Every verb on /api/v1/... and /apis/{group}/{version}/..."""

    closed: asyncio.Event

    def on_connection_close(self) -> None:
        self.closed.set()

    def target(self, group: str, version: str, rest: str) -> Target:
        parts = rest.strip("/").split("/")
        namespace: str | None = None
        if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] not in ("status", "finalize"):
            namespace, parts = parts[1], parts[2:]
        if len(parts) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rtype = self.ctx.api.resource(group, version, parts[0])
        name = parts[1] if len(parts) > 1 else ""
        sub = parts[2] if len(parts) > 2 else ""
        if sub and sub not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rtype.namespaced and name and namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(rtype, namespace if rtype.namespaced else "", name, sub)

    async def handle(self, method: str, group: str, version: str, rest: str) -> None:
        self.closed = asyncio.Event()
        try:
            target = self.target(group or "", version, rest)
            verb = self.verb(method, target)
            fault = self.ctx.faults.take(verb, target.rtype.plural)
            if fault and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault and fault.status:
                raise fault.error(target.rtype.plural)
            if verb == "watch":
                await self.watch(target, fault)
            elif verb == "log":
                await self.log(target)
            else:
                self.reply(verb, target)
        except ApiError as error:
            if not self._finished:
                self.fail(error)

    def verb(self, method: str, target: Target) -> str:
        if target.subresource == "log":
            return "log"
        if method == "GET" and not target.name:
            return "watch" if self.get_query_argument("watch", "") in TRUE else "list"
        collection = {"POST": "create", "DELETE": "deletecollection"}
        single = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        verb = (single if target.name else collection).get(method)
        if verb is None:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        return verb

    def reply(self, verb: str, t: Target) -> None:
        api, args = self.ctx.api, self.get_query_argument
        dry_run = args("dryRun", "") == "All"
        ns = t.namespace or ""
        if verb == "get":
            self.send(api.get(t.rtype, ns, t.name))
        elif verb == "list":
            limit = int(args("limit", "0") or 0)
            self.send(
                api.list_objects(
                    t.rtype,
                    t.namespace,
                    args("labelSelector", None),
                    args("fieldSelector", None),
                    limit,
                    args("continue", None),
                )
            )
        elif verb == "create":
            self.send(api.create(t.rtype, ns, self.body(), dry_run), 201)
        elif verb == "update":
            self.send(api.replace(t.rtype, ns, t.name, self.body(), t.subresource, dry_run))
        elif verb == "patch":
            content_type = self.request.headers.get("Content-Type", "")
            self.send(
                api.patch(t.rtype, ns, t.name, self.body(), content_type, t.subresource, dry_run)
            )
        elif verb in ("delete", "deletecollection"):
            options = self.body() or {}
            for key in ("propagationPolicy", "gracePeriodSeconds"):
                if args(key, None) is not None:
                    options[key] = args(key)
            if dry_run:
                options["dryRun"] = ["All"]
            if verb == "delete":
                self.send(api.delete(t.rtype, ns, t.name, options))
            else:
                self.send(
                    api.delete_collection(
                        t.rtype,
                        t.namespace,
                        args("labelSelector", None),
                        args("fieldSelector", None),
                        options,
                    )
                )

    async def watch(self, t: Target, fault: Fault | None) -> None:
        args = self.get_query_argument
        match = self.ctx.api.matcher(
            t.rtype, args("labelSelector", None), args("fieldSelector", None)
        )
        timeout = float(args("timeoutSeconds", "") or self.ctx.default_watch_timeout)
        bookmarks = self.ctx.bookmark_every if args("allowWatchBookmarks", "") in TRUE else None
        stop = asyncio.Event()
        watcher = Watcher(
            self.ctx.api.store, t.rtype, t.namespace, match, self.ctx.api.present, stop
        )
        stop_task = asyncio.ensure_future(self._stop_when_done(stop))
        self.set_header("Content-Type", "application/json")
        sent = 0
        try:
            await self.flush()
            events = watcher.events(args("resourceVersion", None), timeout, bookmarks)
            if fault and fault.gone:
                events = _single(
                    gone_event(args("resourceVersion", "") or "0", self.ctx.api.store.rv)
                )
            cut = fault.cut_after if fault else None
            async with contextlib.aclosing(events if cut != 0 else _single()) as stream:
                async for event in stream:
                    self.write(json.dumps(event) + "\n")
                    await self.flush()
                    sent += 1
                    if sent == cut:
                        break
            if cut is not None:
                self.request.connection.stream.close()  # type: ignore[union-attr]
                return
        except tornado.iostream.StreamClosedError:
            return
        finally:
            stop_task.cancel()
        self.finish()

    async def _stop_when_done(self, stop: asyncio.Event) -> None:
        waits = {
            asyncio.ensure_future(self.closed.wait()),
            asyncio.ensure_future(self.ctx.stopping.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            stop.set()
        finally:
            for task in waits:
                task.cancel()

    async def log(self, t: Target) -> None:
        pod = self.ctx.api.get(t.rtype, t.namespace or "", t.name)
        names = [
            c["name"] for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
        ]
        container = self.get_query_argument("container", None)
        if container is None:
            if len(pod["spec"]["containers"]) > 1:
                raise bad_request(
                    f"a container name must be specified for pod {t.name}, choose one of: [{' '.join(names)}]"
                )
            container = names[0]
        if container not in names:
            raise bad_request(f"container {container} is not valid for pod {t.name}")
        runtime = self.ctx.kubelet.runtime(t.namespace or "", t.name)
        log = runtime.logs.get(container) if runtime else None
        if log is None:
            raise bad_request(
                f'container "{container}" in pod "{t.name}" is waiting to start: ContainerCreating'
            )
        args = self.get_query_argument
        tail = args("tailLines", None)
        since = args("sinceSeconds", None)
        self.set_header("Content-Type", "text/plain")
        follow = args("follow", "") in TRUE
        lines = log.read(
            follow,
            int(tail) if tail else None,
            float(since) if since else None,
            args("timestamps", "") in TRUE,
        )
        try:
            async for line in lines:
                self.write(line)
                if follow:
                    await self.flush()
                if self.closed.is_set():
                    return
        except tornado.iostream.StreamClosedError:
            return
        self.finish()

    async def get(self, *path: str) -> None:
        await self.handle("GET", *path)

    async def post(self, *path: str) -> None:
        await self.handle("POST", *path)

    async def put(self, *path: str) -> None:
        await self.handle("PUT", *path)

    async def patch(self, *path: str) -> None:
        await self.handle("PATCH", *path)

    async def delete(self, *path: str) -> None:
        await self.handle("DELETE", *path)


class FaultsHandler(Handler):
    """/_sim/faults: POST a Fault as JSON, GET the pending and used ones, DELETE to clear."""

    def post(self) -> None:
        try:
            fault = self.ctx.faults.add(Fault(**self.body()))
        except TypeError as error:
            self.fail(bad_request(str(error)))
            return
        self.send(fault.to_dict(), 201)

    def get(self) -> None:
        faults = self.ctx.faults
        self.send(
            {
                "pending": [f.to_dict() for f in faults.pending],
                "used": [f.to_dict() for f in faults.used],
            }
        )

    def delete(self) -> None:
        self.ctx.faults.clear()
        self.send({})


class CompactHandler(Handler):
    """/_sim/compact: forget the change history; watches from older resourceVersions get 410."""

    def post(self) -> None:
        self.ctx.api.store.compact()
        self.send({"compactedResourceVersion": str(self.ctx.api.store.compacted_rv)})


async def _single(*events: Obj) -> AsyncGenerator[Obj, None]:
    for event in events:
        yield event


class HealthHandler(tornado.web.RequestHandler):
    def get(self, _: str) -> None:
        self.finish("ok")


def make_app(ctx: Context) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/(healthz|readyz|livez)", HealthHandler),
            (r"/_sim/faults", FaultsHandler, {"ctx": ctx}),
            (r"/_sim/compact", CompactHandler, {"ctx": ctx}),
            (
                r"/(version|api|api/v1|apis|apis/[^/]+|apis/[^/]+/[^/]+)/?",
                DiscoveryHandler,
                {"ctx": ctx},
            ),
            (r"/api()/(v1)/(.+)", ResourceHandler, {"ctx": ctx}),
            (r"/apis/([^/]+)/([^/]+)/(.+)", ResourceHandler, {"ctx": ctx}),
        ]
    )
