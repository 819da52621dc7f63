"""A fault-injecting reverse proxy in front of the test cluster's real API server.

It serves plain HTTP on 127.0.0.1 and forwards every request over TLS to the API server of the
kubeconfig it fronts, with that kubeconfig's credentials; it writes a kubeconfig of its own that
points at itself with the same token (a client must present that token). Rules, matched by the
request's verb and resource as the API server's audit log names them (`create pods`, `watch
events`, `get persistentvolumeclaims`, ...), each for a number of requests:

- `status`: answer that status with a Kubernetes Status body (and `retry_after`: a Retry-After
  header, as an overloaded API server sends with 429), without asking the API server;
- `delay`: forward the request, then hold its answer this many seconds (a slow API server: the
  request is done even when the client gave up waiting);
- `cut_after`: a watch is cut (its connection dropped mid-stream) after that many events;
- `gone`: a watch is answered with the 410 Expired ERROR event the API server sends for a
  resourceVersion it no longer has.

`cut_watches(resource)` drops the watches of `resource` that are open now; `open_watches(resource)`
counts them. A watch whose client goes is closed upstream at once.

    with FaultProxy(kube_ns.hub_kubeconfig, tmp_path) as proxy:
        rule = proxy.inject("create", "pods", status=429, retry_after=1, times=2)
        ...  # start the hub with KUBECONFIG=proxy.kubeconfig_path
        assert rule.hits == 2

It runs its own event loop in a thread, so synchronous tests use it as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml
from aiohttp import web

#: Headers of one hop, not passed on (aiohttp sets its own framing).
HOP_HEADERS = {
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
    "host", "authorization", "upgrade", "proxy-authorization", "te", "trailer",
}  # fmt: skip
#: Status reasons as the API server words them in a Status body.
STATUS_REASONS = {
    403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 410: "Expired",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}  # fmt: skip


@dataclass
class Rule:
    """One fault: for requests of `verb` on `resource` ("*" matches any), `times` times."""

    verb: str
    resource: str
    status: int | None = None
    retry_after: int | None = None
    delay: float = 0
    cut_after: int | None = None
    gone: bool = False
    times: int = 1
    hits: int = 0

    def take(self, verb: str, resource: str) -> bool:
        """Whether this rule applies to the request (counting it as a hit when it does)."""
        if self.hits >= self.times or self.verb not in ("*", verb):
            return False
        if self.resource not in ("*", resource):
            return False
        self.hits += 1
        return True


def verb_and_resource(method: str, path: str, query: dict[str, str]) -> tuple[str, str]:
    """The audit verb and resource (with its subresource, `pods/log`) of an API request."""
    parts = [p for p in path.split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else []
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        rest = rest[2:]  # namespaced: drop namespaces/<ns> (but not "namespaces/<name>")
    resource = rest[0] if rest else ""
    named = len(rest) >= 2
    if len(rest) >= 3:
        resource += "/" + rest[2]
    if method == "GET":
        watching = query.get("watch", "").lower() in ("1", "true")
        verb = "watch" if watching else "get" if named else "list"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, "")
        if method == "DELETE":
            verb = "delete" if named else "deletecollection"
    return verb, resource


def status_body(code: int, message: str) -> dict[str, Any]:
    """A Kubernetes Status object, as the API server answers a failure."""
    reason = STATUS_REASONS.get(code, HTTPStatus(code).phrase.replace(" ", ""))
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


class FaultProxy:
    """The proxy in front of the API server of `kubeconfig`; its own kubeconfig in `state`."""

    def __init__(self, kubeconfig: Path, state: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context = _named(config["contexts"], config["current-context"])["context"]
        cluster = _named(config["clusters"], context["cluster"])["cluster"]
        user = _named(config["users"], context["user"])["user"]
        self.upstream = cluster["server"].rstrip("/")
        self.token = str(user["token"])
        self.ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.rules: list[Rule] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._watches: dict[int, tuple[str, asyncio.BaseTransport]] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self._config = config
        self.kubeconfig_path = state / "faultproxy.kubeconfig"

    # -- rules ---------------------------------------------------------------------------------

    def inject(self, verb: str, resource: str, **fault: Any) -> Rule:
        """Add a fault (see the module's docstring) and return its rule, to read its `hits`."""
        rule = Rule(verb, resource, **fault)
        with self._lock:
            self.rules.append(rule)
        return rule

    def cut_watches(self, resource: str) -> int:
        """Drop the open watches of `resource` (their connections, mid-stream); how many."""

        def cut() -> int:
            open_now = [t for r, t in self._watches.values() if r == resource]
            for transport in open_now:
                transport.abort()
            return len(open_now)

        return asyncio.run_coroutine_threadsafe(_call(cut), self._loop).result(30)

    def open_watches(self, resource: str) -> int:
        """How many watches of `resource` are open now."""
        return sum(1 for r, _ in list(self._watches.values()) if r == resource)

    def _match(self, verb: str, resource: str) -> Rule | None:
        with self._lock:
            return next((r for r in self.rules if r.take(verb, resource)), None)

    # -- serving -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(status_body(401, "Unauthorized"), status=401)
        verb, resource = verb_and_resource(request.method, request.path, dict(request.query))
        rule = self._match(verb, resource)
        if rule is not None and rule.status is not None:
            headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after else {}
            message = f"{verb} {resource}: injected by the test's fault proxy"
            body = status_body(rule.status, message)
            return web.json_response(body, status=rule.status, headers=headers)
        if rule is not None and rule.gone:
            return await self._gone(request)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["Authorization"] = f"Bearer {self.token}"
        upstream = await self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read() if request.can_read_body else None,
        )
        async with upstream:
            if verb != "watch":
                body = await upstream.read()
                if rule is not None and rule.delay:
                    await asyncio.sleep(rule.delay)
                return web.Response(status=upstream.status, body=body, headers=_pass(upstream))
            response = web.StreamResponse(status=upstream.status, headers=_pass(upstream))
            await response.prepare(request)
            cut_after = rule.cut_after if rule is not None else None
            if cut_after is None:
                assert request.transport is not None
                self._watches[id(request)] = (resource, request.transport)
                try:
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                    await response.write_eof()
                except ConnectionError:
                    pass  # the client went, or cut_watches() cut it
                finally:
                    self._watches.pop(id(request), None)
                return response
            for _ in range(cut_after):  # one event a line
                await response.write(await upstream.content.readline())
            # Cut: the connection is dropped mid-stream, with no end to its chunks.
            assert request.transport is not None
            request.transport.abort()
            return response

    async def _gone(self, request: web.Request) -> web.StreamResponse:
        version = request.query.get("resourceVersion", "0")
        event = {
            "type": "ERROR",
            "object": status_body(410, f"too old resource version: {version}"),
        }
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(json.dumps(event).encode() + b"\n")
        await response.write_eof()
        return response

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=100),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=True,
        )
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{path:.*}", self._handle)
        # A client that goes (the hub stopping, a watch it gives up) cancels its handler, which
        # closes the upstream request: no watch stays open upstream waiting for its next event.
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=5, handler_cancellation=True
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        for _, transport in self._watches.values():
            transport.abort()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def start(self) -> FaultProxy:
        """Serve, and write the proxy's kubeconfig (same user and namespace, the proxy's URL)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        config = json.loads(json.dumps(self._config))
        for cluster in config["clusters"]:
            cluster["cluster"] = {"server": f"http://127.0.0.1:{self.port}"}
        self.kubeconfig_path.write_text(json.dumps(config, indent=1))
        self.kubeconfig_path.chmod(0o600)
        return self

    def stop(self) -> None:
        """Stop serving (open watches end) and the proxy's thread."""
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def _call(function: Any) -> Any:
    return function()


def _named(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(e for e in entries if e["name"] == name)


def _pass(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
