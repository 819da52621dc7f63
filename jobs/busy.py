"""`GET api/busy-servers`: the servers that have unfinished jobs, for the culler (which keeps
them running) and admins; the culler asks here instead of reading the jobs database."""

from __future__ import annotations

from typing import Any

from tornado import web

from hubflow.hub.services import CULLER_SERVICE
from hubflow.jobs.handlers import APIHandler
from hubflow.launcher.contract import JobState

UNFINISHED = [state for state in JobState if not state.finished]


class BusyServersHandler(APIHandler):
    """Each (user, server) with a job that has not finished, and those jobs' ids and states."""

    takes_payload = False
    allowed_services = (CULLER_SERVICE,)

    async def get(self) -> None:
        if not (self.caller.is_service or self.caller.is_admin):
            raise web.HTTPError(403, "only the culler and admins see every user's busy servers")
        servers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for job in self.store.list(states=UNFINISHED):
            servers.setdefault((job.user, job.server_name), []).append(
                {"id": job.id, "state": job.state}
            )
        pools = self.settings.get("pools")  # warm pools running a cell are work too (jobs/pools.py)
        for pool in pools.busy_pools() if pools is not None else []:
            servers.setdefault((pool.job.user, pool.job.server_name), []).append(
                {"id": pool.id, "state": pool.state, "kind": "pool"}
            )
        self.write_json(
            {
                "servers": [
                    {"user": user, "server_name": server, "jobs": jobs}
                    for (user, server), jobs in sorted(servers.items())
                ]
            }
        )
