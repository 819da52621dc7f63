"""Jupyter server extension: the browser's way to the jobs API.

JupyterLab's Jobs panel calls `{base_url}hubflow/api/...` on the user's own server. This
extension forwards those calls to the jobs service (HUBFLOW_JOBS_URL) with the server's own
JupyterHub token (JUPYTERHUB_API_TOKEN), which never reaches the browser; callers must be
authenticated to this server like for any Jupyter API. Answers are relayed as they arrive, so
a followed log streams. hubflow enables it in every server through
`etc/jupyter/jupyter_server_config.d/hubflow.json` (installed with the package).

What is forwarded is what the panel needs, no more:

- `hubflow/api/jobs...`: the job list, submit, one job, and a job's cancel, logs and result.
- `GET hubflow/api/pools`: the warm pools of this server's owner (JUPYTERHUB_USER), whatever
  the query asks (an admin's token would otherwise list everyone's).
- `DELETE hubflow/api/pools/ID`: stop one of the owner's pools (another user's is "no pool",
  even where the token of an admin's server could stop it).

Not forwarded: starting a pool, which answers with the pool's key, and taking a pool over
(`api/pools/ID/key`), which hands out a new key and revokes the kernel's. A pool's key is the
one credential that runs cells on its ranks (`api/pools/ID/cells`, `.../interrupt`); it stays
with the kernel that started the pool and never passes through the browser, so a page (or a
script in one) can see and stop the owner's pools but cannot run code in them or take them.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlencode

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import httpclient, httputil, web

from hubflow.launcher.client import ENV_TOKEN, ENV_URL

#: What is forwarded under api/jobs: the list, one job, and a job's cancel, logs and result.
JOBS_PATH = r"(?P<path>(?:/[0-9a-f]{12}(?:/(?:cancel|logs|result))?)?)/?"
#: What is forwarded under api/pools: the list (GET), and one pool (DELETE: stop it).
POOLS_PATH, POOL_PATH = r"(?P<path>)/?", r"(?P<path>/[0-9a-f]{12})/?"

#: The server's owner, whose pools the panel shows (set by JupyterHub in every server).
ENV_USER = "JUPYTERHUB_USER"

#: The jobs service's answer headers that reach the browser.
RELAYED_HEADERS = {"content-type", "cache-control", "location"}

#: How long a call that is not a followed log may take.
REQUEST_TIMEOUT_S = 60.0


class _ClientGone(Exception):
    """The browser closed its connection: stop relaying."""


def _environment() -> tuple[str, str, str]:
    """The jobs service's URL, this server's token and owner; 503 when one is missing."""
    names = (ENV_URL, ENV_TOKEN, ENV_USER)
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise web.HTTPError(
            503, f"{' and '.join(missing)} not set: this server was not started by hubflow"
        )
    base, token, owner = (os.environ[name] for name in names)
    return base, token, owner


def _unreachable(base: str, error: Exception) -> web.HTTPError:
    return web.HTTPError(502, f"the jobs service at {base} did not answer: {error}")


class ProxyHandler(APIHandler):
    """Forwards one call to an API of the jobs service and relays the answer (status, headers,
    body); subclasses say which API and which methods."""

    #: The jobs service's API this handler's paths are under.
    api = "api/jobs"
    _gone = False

    def on_connection_close(self) -> None:
        self._gone = True

    async def forward(self, path: str, query: str | None = None) -> None:
        """Call the jobs API as this server and relay its answer as it comes; `query` replaces
        the browser's."""
        base, token, _ = _environment()
        url = url_path_join(base, self.api) + path
        query = self.request.query if query is None else query
        if query:
            url += "?" + query
        follow = self.get_argument("follow", "0") in ("1", "true", "yes")
        request = httpclient.HTTPRequest(
            url,
            method=self.request.method or "GET",
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            body=self.request.body if self.request.method == "POST" else None,
            follow_redirects=False,
            connect_timeout=30,
            request_timeout=0 if follow else REQUEST_TIMEOUT_S,  # 0: a followed log may be quiet
            header_callback=self._relay_header,
            streaming_callback=self._relay_chunk,
        )
        # a client of its own: long log streams never queue other calls behind them
        client = httpclient.AsyncHTTPClient(force_instance=True)
        try:
            await client.fetch(request, raise_error=False)
        except _ClientGone:
            return
        except (OSError, httpclient.HTTPClientError) as e:
            raise _unreachable(base, e) from None
        finally:
            client.close()
        self.finish()

    async def read_json(self, path: str) -> dict[str, Any]:
        """GET a model from the jobs API as this server; the service's refusal as an error."""
        base, token, _ = _environment()
        client = httpclient.AsyncHTTPClient(force_instance=True)
        try:
            answer = await client.fetch(
                url_path_join(base, self.api) + path,
                headers={"Authorization": f"token {token}"},
                connect_timeout=30,
                request_timeout=REQUEST_TIMEOUT_S,
                raise_error=False,
            )
        except (OSError, httpclient.HTTPClientError) as e:
            raise _unreachable(base, e) from None
        finally:
            client.close()
        try:
            model = json.loads(answer.body or b"null")
        except ValueError:
            model = None
        if answer.code != 200 or not isinstance(model, dict):
            message = model.get("message") if isinstance(model, dict) else None
            raise web.HTTPError(
                answer.code if answer.code >= 400 else 502, message or answer.reason
            )
        return model

    def _relay_header(self, line: str) -> None:
        if line.startswith("HTTP/"):
            start = httputil.parse_response_start_line(line.strip())
            self.set_status(start.code, start.reason)
        else:
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() in RELAYED_HEADERS:
                self.set_header(name.strip(), value.strip())

    def _relay_chunk(self, chunk: bytes) -> None:
        if self._gone:
            raise _ClientGone()
        self.write(chunk)
        # a write to a connection that closed meanwhile fails here; on_connection_close ends it
        self.flush().add_done_callback(lambda done: done.exception())


class JobsProxyHandler(ProxyHandler):
    """The jobs API: list, submit, one job, cancel, logs, result."""

    @web.authenticated
    async def get(self, path: str) -> None:
        await self.forward(path)

    @web.authenticated
    async def post(self, path: str) -> None:
        await self.forward(path)

    @web.authenticated
    async def delete(self, path: str) -> None:
        await self.forward(path)


class PoolListProxyHandler(ProxyHandler):
    """The server owner's warm pools."""

    api = "api/pools"

    @web.authenticated
    async def get(self, path: str) -> None:
        _, _, owner = _environment()
        await self.forward(path, query=urlencode({"user": owner}))


class PoolStopProxyHandler(ProxyHandler):
    """Stop one of the server owner's warm pools."""

    api = "api/pools"

    @web.authenticated
    async def delete(self, path: str) -> None:
        _, _, owner = _environment()
        if (await self.read_json(path)).get("user") != owner:
            raise web.HTTPError(404, f"no pool {path.strip('/')}")
        await self.forward(path)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "hubflow.launcher.serverext"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Route `{base_url}hubflow/api/jobs...` and the pool list and stop to the jobs API."""
    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], "hubflow")
    routes = [
        (url_path_join(base, "api/jobs") + JOBS_PATH, JobsProxyHandler),
        (url_path_join(base, "api/pools") + POOLS_PATH, PoolListProxyHandler),
        (url_path_join(base, "api/pools") + POOL_PATH, PoolStopProxyHandler),
    ]
    web_app.add_handlers(".*$", routes)
    serverapp.log.info("hubflow: jobs API forwarded at %s", ", ".join(r for r, _ in routes))
