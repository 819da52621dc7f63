"""Who is calling: JupyterHub's token authentication, the submit scope, and job ownership."""

from __future__ import annotations

from typing import Any

from jupyterhub.services.auth import HubAuth
from tornado import web

from hubflow.hub.services import SUBMIT_SCOPE


class Caller:
    """The user behind a request's token, as the hub identified them."""

    def __init__(self, model: dict[str, Any], hub_auth: HubAuth) -> None:
        self.model = model
        self.hub_auth = hub_auth

    @property
    def name(self) -> str:
        return str(self.model["name"])

    @property
    def is_admin(self) -> bool:
        return bool(self.model.get("admin"))

    @property
    def is_service(self) -> bool:
        """A hub service (one the handler allows), not a user."""
        return self.model.get("kind", "user") == "service"

    @property
    def groups(self) -> list[str]:
        return sorted(self.model.get("groups") or [])

    @property
    def may_submit(self) -> bool:
        return bool(self.hub_auth.check_scopes({SUBMIT_SCOPE}, self.model))

    def may_see(self, owner: str) -> bool:
        """A user sees their own jobs; an admin sees all."""
        return self.is_admin or owner == self.name


async def identify(handler: web.RequestHandler, hub_auth: HubAuth) -> Caller:
    """The caller of `handler`'s request; 401 without a valid token, 403 without access. A
    service is let through only where the handler names it in `allowed_services`."""
    model = await hub_auth.get_user(handler, sync=False)
    if not model:
        raise web.HTTPError(401, "authentication required: send a JupyterHub API token")
    kind = model.get("kind", "user")
    if kind != "user" and not (
        kind == "service" and model.get("name") in getattr(handler, "allowed_services", ())
    ):
        raise web.HTTPError(403, "only users have jobs")
    if hub_auth.access_scopes and not hub_auth.check_scopes(hub_auth.access_scopes, model):
        raise web.HTTPError(403, "this token has no access to the jobs service")
    return Caller(model, hub_auth)
