"""The hub's admin view (/hub/hubflow/admin): running servers by profile, GPUs in use by type,
and jobs by user and state from the jobs service. Admins only."""

from __future__ import annotations

import inspect
import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from jupyterhub.handlers import BaseHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from hubflow.hub.services import ACCESS_SCOPE
from hubflow.launcher.contract import JobState
from hubflow.spawner.profile_mixin import ProfileSpawnerMixin
from hubflow.spawner.spawn_page import gpu_type_name

#: The admin view's address under the hub's prefix.
ADMIN_PATH = r"/hubflow/admin"
#: How long the token the view calls the jobs service with lives, and when a fresh one is made.
TOKEN_LIFETIME_S = 900
TOKEN_RENEW_S = 60


def server_row(user: str, name: str, spawner: Any) -> dict[str, Any]:
    """One running server: who, which profile and IDE, its GPUs, and whether it answers yet."""
    resolved = spawner.resolved
    return {
        "user": user,
        "server": name or "(default)",
        "profile": resolved.display_name if resolved else "(starting)",
        "ide": resolved.ide if resolved else "",
        "gpu_type": (resolved.gpu_type or "GPU") if resolved and resolved.gpu_count else "",
        "gpus": resolved.gpu_count if resolved else 0,
        "ready": bool(spawner.ready),
        "pending": spawner.pending or "",
    }


def running_servers(users: Iterable[Any]) -> list[dict[str, Any]]:
    """Every active server started from a hubflow profile."""
    return [
        server_row(user.name, name, spawner)
        for user in users
        for name, spawner in sorted(user.spawners.items())
        if isinstance(spawner, ProfileSpawnerMixin) and spawner.active
    ]


def servers_by_profile(servers: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(profile, number of running servers), most used first."""
    return Counter(s["profile"] for s in servers).most_common()


def gpus_by_type(availability: Mapping[str, tuple[int, int]] | None) -> list[dict[str, Any]]:
    """Per GPU type: in use, free and total (None: not known at the moment)."""
    return [
        {"type": gpu_type_name(product), "in_use": total - free, "free": free, "total": total}
        for product, (free, total) in sorted((availability or {}).items())
    ]


def jobs_by_user_and_state(jobs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per user: how many jobs are in each state."""
    counts: dict[str, Counter[str]] = {}
    for job in jobs:
        counts.setdefault(job["user"], Counter())[job["state"]] += 1
    return [
        {"user": user, "states": [counts[user][s.value] for s in JobState]}
        for user in sorted(counts)
    ]


class AdminViewHandler(BaseHandler):
    """Renders the admin view; a non-admin gets 403."""

    _tokens: dict[str, tuple[str, float]] = {}

    def initialize(self, jobs_url: str) -> None:
        self.jobs_url = jobs_url

    def _jobs_token(self, user: Any) -> str:
        """A short-lived token of this admin's that may only reach the jobs service."""
        token, expires = self._tokens.get(user.name, ("", 0.0))
        if time.time() > expires - TOKEN_RENEW_S:
            token = user.new_api_token(
                note="hubflow admin view", expires_in=TOKEN_LIFETIME_S, scopes=[ACCESS_SCOPE]
            )
            self._tokens[user.name] = (token, time.time() + TOKEN_LIFETIME_S)
        return token

    async def _jobs(self, user: Any) -> tuple[list[dict[str, Any]], str | None]:
        """All jobs (an admin sees everyone's), or why they could not be read."""
        try:
            response = await AsyncHTTPClient().fetch(
                f"{self.jobs_url}api/jobs",
                headers={"Authorization": f"token {self._jobs_token(user)}"},
                request_timeout=20,
            )
        except (HTTPClientError, OSError) as e:
            return [], f"the jobs service did not answer ({e})"
        return list(json.loads(response.body)["jobs"]), None

    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        if not user.admin:
            raise web.HTTPError(403, "The hubflow admin view is for admins only.")
        servers = running_servers(self.users.values())
        availability = user.spawner.gpu_availability()
        if inspect.isawaitable(availability):
            availability = await availability
        jobs, jobs_error = await self._jobs(user)
        active = [j for j in jobs if not JobState(j["state"]).finished]
        html = await self.render_template(
            "hubflow-admin.html",
            servers=servers,
            by_profile=servers_by_profile(servers),
            gpus=gpus_by_type(availability),
            gpus_known=availability is not None,
            states=[s.value for s in JobState],
            jobs_by_user=jobs_by_user_and_state(jobs),
            active_jobs=active,
            jobs_error=jobs_error,
        )
        self.finish(html)
