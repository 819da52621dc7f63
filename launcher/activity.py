"""A Jupyter server extension in each user's server: reports its real activity to the hub.

Real activity is what a person or their code does: a kernel that is busy or sends output, a
terminal's input or output, requests to VS Code or RStudio through jupyter-server-proxy, and the
server's start. An open browser tab polling the server's REST API (JupyterLab asks for kernels,
sessions and files every few seconds) is not: jupyterhub-singleuser's own report counts it, so
the spawner turns that report off (JUPYTERHUB_ACTIVITY_INTERVAL=0) and loads this one instead.

Every HUBFLOW_ACTIVITY_INTERVAL seconds the latest real activity goes to the hub's activity API
(JUPYTERHUB_ACTIVITY_URL, with the server's own token), as jupyterhub-singleuser would send it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.ioloop import PeriodicCallback

#: The part of jupyter-server-proxy's activity times that is the proxied IDEs'.
PROXY_ACTIVITY_KEY = "jupyter-server-proxy"


def real_activity(settings: dict[str, Any], now: datetime) -> datetime:
    """The latest real activity of a Jupyter server, from its web application's settings."""
    kernels = settings["kernel_manager"]
    times = [settings["started"], kernels.last_kernel_activity]
    busy = (kernels.get_kernel(k).execution_state == "busy" for k in kernels.list_kernel_ids())
    if any(busy):
        times.append(now)
    if settings.get("terminal_last_activity"):
        times.append(settings["terminal_last_activity"])
    proxied = settings.get("last_activity_times", {}).get(PROXY_ACTIVITY_KEY)
    if proxied:
        times.append(proxied)
    return max(t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in times)


class ActivityReporter:
    """Sends a server's real activity to the hub when it is newer than what was sent."""

    def __init__(self, settings: dict[str, Any], url: str, token: str, server_name: str) -> None:
        self.settings = settings
        self.url = url
        self.token = token
        self.server_name = server_name
        self.sent: datetime | None = None

    async def report(self) -> None:
        """One report (nothing when there was no new activity); failures are logged, not raised."""
        last = real_activity(self.settings, datetime.now(timezone.utc))
        if self.sent is not None and last <= self.sent:
            return
        stamp = last.isoformat().replace("+00:00", "Z")
        body = {"servers": {self.server_name: {"last_activity": stamp}}, "last_activity": stamp}
        try:
            await AsyncHTTPClient().fetch(
                self.url,
                method="POST",
                headers={
                    "Authorization": f"token {self.token}",
                    "Content-Type": "application/json",
                },
                body=json.dumps(body),
            )
        except (HTTPClientError, OSError) as e:
            self.settings["serverapp"].log.warning("hubflow: activity not reported: %s", e)
            return
        self.sent = last


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "hubflow.launcher.activity"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    url = os.environ.get("JUPYTERHUB_ACTIVITY_URL")
    token = os.environ.get("JUPYTERHUB_API_TOKEN")
    if not url or not token:
        serverapp.log.warning("hubflow: no JUPYTERHUB_ACTIVITY_URL, activity is not reported")
        return
    interval = float(os.environ.get("HUBFLOW_ACTIVITY_INTERVAL", "60"))
    settings = serverapp.web_app.settings
    reporter = ActivityReporter(settings, url, token, os.environ.get("JUPYTERHUB_SERVER_NAME", ""))
    callback = PeriodicCallback(reporter.report, interval * 1000)
    settings["hubflow_activity_reporter"] = callback  # kept, so it is not collected
    callback.start()
    serverapp.log.info("hubflow: real activity goes to the hub every %g s", interval)
