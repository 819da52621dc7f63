"""A per-policy view of the hub's REST API, for jupyterhub-idle-culler.

idle-culler applies one idle timeout and one maximum age to every server it is shown. hubflow
runs it once per policy, each time against this view: `/<policy>/users` lists only the servers
under that policy (and none with unfinished jobs), and a DELETE is checked again, then passed on
to the hub. idle-culler itself decides, logs and stops, unchanged.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from tornado import web

#: Why a server may not be culled now (None: it may), asked again just before it is stopped.
Objection = Callable[[str, str], Awaitable[str | None]]
#: Stop a user's server through the hub; returns the hub's HTTP status.
Stopper = Callable[[str, str], Awaitable[int]]


class PolicyView:
    """The users and servers shown to each policy's idle-culler in the current round."""

    def __init__(self, hub_version: str, objection: Objection, stop: Stopper) -> None:
        self.hub_version = hub_version
        self.objection = objection
        self.stop = stop
        self.token = secrets.token_hex(16)
        self.users: dict[str, list[dict[str, Any]]] = {}

    def show(self, users_by_policy: dict[str, list[dict[str, Any]]]) -> None:
        """What each policy's culler sees from now on."""
        self.users = users_by_policy

    def app(self) -> web.Application:
        """The tornado application serving the view."""
        policy = r"/(?P<policy>[-a-z0-9]+)"
        return web.Application(
            [
                (rf"{policy}/?", _VersionHandler, {"view": self}),
                (rf"{policy}/users", _UsersHandler, {"view": self}),
                (rf"{policy}/users/(?P<user>[^/]+)/server", _StopHandler, {"view": self}),
                (
                    rf"{policy}/users/(?P<user>[^/]+)/servers/(?P<server>[^/]*)",
                    _StopHandler,
                    {"view": self},
                ),
            ]
        )


class _Handler(web.RequestHandler):
    def initialize(self, view: PolicyView) -> None:
        self.view = view

    def prepare(self) -> None:
        if self.request.headers.get("Authorization") != f"token {self.view.token}":
            raise web.HTTPError(403)

    def write_json(self, model: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(model))


class _VersionHandler(_Handler):
    def get(self, policy: str) -> None:
        self.write_json({"version": self.view.hub_version})


class _UsersHandler(_Handler):
    def get(self, policy: str) -> None:
        self.write_json(self.view.users.get(policy, []))


class _StopHandler(_Handler):
    async def delete(self, policy: str, user: str, server: str = "") -> None:
        reason = await self.view.objection(user, server)
        if reason:
            raise web.HTTPError(409, reason)
        self.set_status(await self.view.stop(user, server))
        self.finish()
