"""The spawn page's form and query, refused with a 400 naming the field when they are not UTF-8
text. JupyterHub's own spawn handler decodes them unchecked, so such a request met a 500 there.

`with_strict_forms(cls)` gives an authenticator class whose handlers (registered before
JupyterHub's own) serve the spawn page through `StrictSpawnHandler`.
"""

from __future__ import annotations

import logging
from typing import Any

from jupyterhub.handlers.pages import SpawnHandler
from tornado import web

log = logging.getLogger("JupyterHub")

#: The spawn page's routes, as JupyterHub declares them (jupyterhub/handlers/pages.py).
SPAWN_ROUTES = (r"/spawn", r"/spawn/([^/]+)", r"/spawn/([^/]+)/([^/]+)")


def first_undecodable(arguments: dict[str, list[bytes]]) -> str | None:
    """The name of the first argument whose value is not UTF-8, or None."""
    for name, values in arguments.items():
        for value in values:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return name
    return None


class StrictSpawnHandler(SpawnHandler):
    """JupyterHub's spawn page, with its form and query checked to be text first."""

    async def prepare(self) -> None:
        """Refuse a query or form value that is not UTF-8, naming its field (once the hub
        knows who asks)."""
        await super().prepare()
        for arguments in (self.request.query_arguments, self.request.body_arguments):
            name = first_undecodable(arguments)
            if name is not None:
                user = self.current_user.name if self.current_user else "?"
                log.warning("Spawn refused for %s: field %r is not UTF-8 text", user, name)
                raise web.HTTPError(400, f"{name}: must be UTF-8 text")


class StrictFormsMixin:
    """An authenticator mixin: the spawn page's routes go to StrictSpawnHandler."""

    def get_handlers(self, app: Any) -> list[tuple[str, type]]:
        """The authenticator's own handlers, then the strict spawn page."""
        own: list[tuple[str, type]] = super().get_handlers(app)  # type: ignore[misc]
        return [*own, *((route, StrictSpawnHandler) for route in SPAWN_ROUTES)]


def with_strict_forms(authenticator: type) -> type:
    """A subclass of `authenticator` (named as it is) whose spawn page refuses non-text input."""
    return type(authenticator.__name__, (StrictFormsMixin, authenticator), {})
