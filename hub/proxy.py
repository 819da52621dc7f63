"""configurable-http-proxy as hubflow runs it: services' routes added as part of starting, and
(with culling on) without its traffic counted as users' activity.

JupyterHub adds a service's route only when it checks the proxy's routes, right after starting
its services, and warns of a "missing route" each time, though a just-started proxy has none;
`HubflowProxy` adds them in that first check as the expected step it is, and still warns of a
route lost later (a restarted proxy).

The hub reads every route's last traffic from the proxy (every `last_activity_interval`) and
takes it as the server's activity; an open, idle JupyterLab tab polls its server all the time,
so that traffic says nothing about use. `ActivityBlindProxy` leaves the traffic time out of the
routes it reports, which JupyterHub treats as a proxy that does not know it. The same periodic
check still restores routes a restarted proxy lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyterhub.proxy import ConfigurableHTTPProxy


class HubflowProxy(ConfigurableHTTPProxy):
    """ConfigurableHTTPProxy (configured as such) that routes services as the hub starts."""

    _routed_services = False

    async def check_routes(
        self, user_dict: Any, service_dict: Any, routes: dict[str, Any] | None = None
    ) -> None:
        """The hub's first check adds the services' routes (logged by `add_service`)."""
        if not self._routed_services:
            self._routed_services = True
            routes = routes if routes is not None else await self.get_all_routes()
            routed = {r["data"].get("service") for r in routes.values()}
            missing = [
                s for s in service_dict.values() if s.server is not None and s.name not in routed
            ]
            if missing:
                await asyncio.gather(*(self.add_service(s) for s in missing))
                routes = await self.get_all_routes()
        await super().check_routes(user_dict, service_dict, routes)


class ActivityBlindProxy(HubflowProxy):
    """HubflowProxy whose routes carry no `last_activity`."""

    async def get_all_routes(self) -> dict[str, Any]:
        """The proxy's routes, without their traffic times."""
        routes: dict[str, Any] = await super().get_all_routes()
        for route in routes.values():
            route["data"].pop("last_activity", None)
        return routes
