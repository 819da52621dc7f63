"""The culling service: every round, each server's policy, its jobs and a warning, then
jupyterhub-idle-culler once per policy on the view of that policy's servers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyterhub_idle_culler import cull_idle, utcnow
from tornado import ioloop, netutil
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer

from hubflow.culling.notices import notice, write_notices
from hubflow.culling.policy import Policy, due_cull, policy_for
from hubflow.culling.view import PolicyView
from hubflow.hub.culling_notices import FILE_NAME
from hubflow.hub.hubapi import HubAPI
from hubflow.hub.services import jobs_api_url
from hubflow.hub.settings import CullingSettings, HubflowSettings
from hubflow.profiles.source import ProfileSource

log = logging.getLogger("hubflow.culling")

#: idle-culler's timeout for a policy that never culls for idleness (only for maximum age).
NEVER_S = 10**10
#: How long the culler waits for the jobs service's answer.
JOBS_TIMEOUT_S = 20


class JobsAPI:
    """The jobs service, asked with the culler's own token which servers have unfinished jobs
    (the culler never reads the jobs database: the jobs service alone owns it)."""

    def __init__(self, api_url: str, token: str) -> None:
        self.url = f"{api_url.rstrip('/')}/api/busy-servers"
        self.headers = {"Authorization": f"token {token}"}

    async def busy_servers(self) -> dict[tuple[str, str], str]:
        """(user, server) -> why it is busy, for every server with an unfinished job; raises
        when the jobs service does not answer."""
        request = HTTPRequest(self.url, headers=self.headers, request_timeout=JOBS_TIMEOUT_S)
        response = await AsyncHTTPClient().fetch(request)
        busy = {}
        for server in json.loads(response.body)["servers"]:
            user, name, job = server["user"], server["server_name"], server["jobs"][0]
            busy[(user, name)] = f"job {job['id']} of {user}/{name} is {job['state']}"
        return busy


@dataclass
class Culler:
    """One culling round after another; see the package docstring."""

    hub: HubAPI
    profiles: ProfileSource
    jobs: JobsAPI
    settings: CullingSettings
    notices_path: Path
    view: PolicyView | None = None
    view_url: str = ""

    async def objection(self, user: str, server: str) -> str | None:
        """Why this server must not be culled now: a job of it has not finished, or the jobs
        service cannot say (then nothing is culled)."""
        try:
            busy = await self.jobs.busy_servers()
        except Exception as e:
            return f"the jobs service does not answer ({e}), so its jobs are unknown"
        return busy.get((user, server))

    async def start_view(self) -> None:
        """Serve the per-policy view on a free loopback port."""
        self.view = PolicyView(await self.hub.version(), self.objection, self.hub.stop)
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        HTTPServer(self.view.app()).add_sockets(sockets)
        self.view_url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"

    async def round(self) -> None:
        """Sort servers by policy, warn those due soon, and cull with idle-culler per policy."""
        assert self.view is not None, "start_view() first"
        now = utcnow()
        catalog = self.profiles.current()
        policies: dict[str, Policy] = {}
        shown: dict[str, dict[str, dict[str, Any]]] = {}
        notices: dict[str, dict[str, dict[str, Any]]] = {}
        try:
            busy = await self.jobs.busy_servers()
        except Exception as e:
            log.warning("Culling nothing this round: the jobs service does not answer (%s)", e)
            return
        async for user in self.hub.users_with_ready_servers():
            for name, server in (user.get("servers") or {}).items():
                if not server.get("ready"):
                    continue
                reason = busy.get((user["name"], name))
                if reason:
                    log.debug("Not culling %s/%s: %s", user["name"], name, reason)
                    continue
                policy = policy_for(server, catalog, self.settings)
                if not policy.culls:
                    continue
                policies[policy.key] = policy
                mine = shown.setdefault(policy.key, {})
                mine.setdefault(user["name"], dict(user, servers={}))["servers"][name] = server
                due = due_cull(server, policy)
                if due and (due.at - now).total_seconds() <= self.settings.warn_before:
                    notices.setdefault(user["name"], {})[name] = notice(due)
        write_notices(self.notices_path, notices)
        self.view.show({key: list(users.values()) for key, users in shown.items()})
        await asyncio.gather(
            *(
                cull_idle(
                    url=f"{self.view_url}/{key}",
                    api_token=self.view.token,
                    inactive_limit=policy.idle_timeout or NEVER_S,
                    max_age=policy.max_age,
                )
                for key, policy in policies.items()
            )
        )

    async def safe_round(self) -> None:
        """A round whose failure is logged, so the next one still comes."""
        try:
            await self.round()
        except Exception:
            log.exception("Culling round failed")


def run() -> None:
    """Cull every HUBFLOW_CULL_EVERY seconds until stopped (JupyterHub starts this as a service,
    with the hub's settings in its environment)."""
    hubflow, settings = HubflowSettings.from_env(), CullingSettings.from_env()
    data_dir = hubflow.data_path
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    culler = Culler(
        hub=HubAPI(os.environ["JUPYTERHUB_API_URL"], token),
        profiles=ProfileSource(hubflow.profile_paths),
        jobs=JobsAPI(jobs_api_url(hubflow), token),
        settings=settings,
        notices_path=data_dir / FILE_NAME,
    )
    loop = ioloop.IOLoop.current()

    async def begin() -> None:
        await culler.start_view()
        log.info(
            "hubflow culler: every %d s; idle %d s (GPU %d s), max age %d s, warning %d s before",
            settings.every,
            settings.idle_timeout,
            settings.gpu_idle_timeout,
            settings.max_age,
            settings.warn_before,
        )
        await culler.safe_round()
        ioloop.PeriodicCallback(culler.safe_round, settings.every * 1000).start()

    loop.add_callback(begin)
    loop.start()
