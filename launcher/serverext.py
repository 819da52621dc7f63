"""Jupyter server extension: the browser's way to the jobs API.

JupyterLab's Jobs panel calls `{base_url}hubflow/api/jobs...` on the user's own server. This
extension forwards those calls to the jobs service (HUBFLOW_JOBS_URL) with the server's own
JupyterHub token (JUPYTERHUB_API_TOKEN), which never reaches the browser; callers must be
authenticated to this server like for any Jupyter API. Answers are relayed as they arrive, so
a followed log streams. hubflow enables it in every server through
`etc/jupyter/jupyter_server_config.d/hubflow.json` (installed with the package).
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import httpclient, httputil, web

from hubflow.launcher.client import ENV_TOKEN, ENV_URL

#: What is forwarded under api/jobs: the list, one job, and a job's cancel, logs and result.
JOBS_PATH = r"(?P<path>(?:/[0-9a-f]{12}(?:/(?:cancel|logs|result))?)?)/?"

#: The jobs service's answer headers that reach the browser.
RELAYED_HEADERS = {"content-type", "cache-control", "location"}

#: How long a call that is not a followed log may take.
REQUEST_TIMEOUT_S = 60.0


class _ClientGone(Exception):
    """The browser closed its connection: stop relaying."""


class JobsProxyHandler(APIHandler):
    """Forwards one call to the jobs API and relays the answer (status, headers, body)."""

    _gone = False

    @web.authenticated
    async def get(self, path: str) -> None:
        await self.forward(path)

    @web.authenticated
    async def post(self, path: str) -> None:
        await self.forward(path)

    @web.authenticated
    async def delete(self, path: str) -> None:
        await self.forward(path)

    def on_connection_close(self) -> None:
        self._gone = True

    async def forward(self, path: str) -> None:
        """Call the jobs API as this server and relay its answer as it comes."""
        base, token = os.environ.get(ENV_URL), os.environ.get(ENV_TOKEN)
        if not base or not token:
            missing = " and ".join(
                name for name in (ENV_URL, ENV_TOKEN) if not os.environ.get(name)
            )
            raise web.HTTPError(503, f"{missing} not set: this server was not started by hubflow")
        url = url_path_join(base, "api/jobs") + path
        if self.request.query:
            url += "?" + self.request.query
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
            raise web.HTTPError(502, f"the jobs service at {base} did not answer: {e}") from None
        finally:
            client.close()
        self.finish()

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


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "hubflow.launcher.serverext"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Route `{base_url}hubflow/api/jobs...` to the jobs API."""
    web_app = serverapp.web_app
    route = url_path_join(web_app.settings["base_url"], "hubflow/api/jobs") + JOBS_PATH
    web_app.add_handlers(".*$", [(route, JobsProxyHandler)])
    serverapp.log.info("hubflow: jobs API forwarded at %s", route)
