"""configurable-http-proxy without its traffic counted as users' activity.

The hub reads every route's last traffic from the proxy (every `last_activity_interval`) and
takes it as the server's activity; an open, idle JupyterLab tab polls its server all the time,
so that traffic says nothing about use. This proxy leaves the traffic time out of the routes it
reports, which JupyterHub treats as a proxy that does not know it. The same periodic check still
restores routes a restarted proxy lost.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.proxy import ConfigurableHTTPProxy


class ActivityBlindProxy(ConfigurableHTTPProxy):
    """ConfigurableHTTPProxy (configured as such) whose routes carry no `last_activity`."""

    async def get_all_routes(self) -> dict[str, Any]:
        """The proxy's routes, without their traffic times."""
        routes: dict[str, Any] = await super().get_all_routes()
        for route in routes.values():
            route["data"].pop("last_activity", None)
        return routes
