"""The one client of the hub's REST API that hubflow's services use, each with its own token
(JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN, as the hub gives its managed services): users and
their servers, the record hubflow's spawner keeps of each (profiles/server_record.py), stopping
a server, the hub's version."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from hubflow.launcher.contract import DEFAULT_MOUNT_PATH
from hubflow.profiles import Holding
from hubflow.profiles.server_record import ServerRecord

#: Users per page when listing them.
PAGE = 200


class ServerUnavailable(Exception):
    """The user's server is not running or carries no hubflow record; the message says which."""


class HubAPI:
    """The hub REST API, authenticated as the calling service."""

    def __init__(self, api_url: str | None = None, token: str | None = None) -> None:
        self.api_url = (api_url or os.environ["JUPYTERHUB_API_URL"]).rstrip("/")
        self.headers = {"Authorization": f"token {token or os.environ['JUPYTERHUB_API_TOKEN']}"}

    async def _fetch(self, path_or_url: str, **kwargs: Any) -> HTTPResponse:
        url = path_or_url if "://" in path_or_url else f"{self.api_url}/{path_or_url}"
        headers = dict(self.headers, **kwargs.pop("headers", {}))
        response: HTTPResponse = await AsyncHTTPClient().fetch(
            HTTPRequest(url, headers=headers, **kwargs), raise_error=False
        )
        return response

    async def _get(self, path: str) -> Any:
        response = await self._fetch(path)
        response.rethrow()
        return json.loads(response.body)

    async def version(self) -> str:
        """The hub's version (as jupyterhub-idle-culler expects to read it)."""
        return str((await self._get(""))["version"])

    async def users_with_ready_servers(self) -> AsyncIterator[dict[str, Any]]:
        """Every user with a ready server, page by page, servers' state included."""
        url: str | None = "users?state=ready"
        while url:
            response = await self._fetch(
                url, headers={"Accept": "application/jupyterhub-pagination+json"}
            )
            response.rethrow()
            page = json.loads(response.body)
            for user in page["items"]:
                yield user
            url = (page["_pagination"].get("next") or {}).get("url")

    async def stop(self, user: str, server: str) -> int:
        """Stop a user's server; the hub's status (204 stopped, 202 stopping)."""
        path = f"servers/{quote(server, safe='')}" if server else "server"
        response = await self._fetch(f"users/{quote(user, safe='')}/{path}", method="DELETE")
        return int(response.code)

    async def server_record(self, user: str, server_name: str) -> ServerRecord:
        """What hubflow's spawner recorded of `user`'s running server `server_name`;
        ServerUnavailable if it is not running or hubflow did not start it."""
        label = f"server '{server_name}'" if server_name else "the default server"
        try:
            model = await self._get(f"users/{quote(user, safe='')}")
        except (HTTPClientError, OSError) as e:
            raise ServerUnavailable(f"cannot look up user {user!r} in the hub: {e}") from None
        server = (model.get("servers") or {}).get(server_name)
        if not server or not server.get("ready"):
            raise ServerUnavailable(f"{label} of {user} is not running: start it first")
        state = server.get("state") or {}
        record = ServerRecord.from_spawner_state(state)
        if record is None or not (record.workspace or "pod_name" in state):
            raise ServerUnavailable(f"{label} of {user} was not started by hubflow")
        if not record.workspace:  # a pod: its workspace is where the profile mounts it
            mount_path = (record.profile.get("workspace") or {}).get("mount_path")
            record = replace(record, workspace=mount_path or DEFAULT_MOUNT_PATH)
        return record

    async def server_holdings(self) -> list[Holding]:
        """Every active server (all users'), with its user's groups and the GPUs its profile
        holds, for the GPU quotas that jobs share with servers."""
        holdings: list[Holding] = []
        offset = 0
        while True:
            users = await self._get(f"users?state=active&offset={offset}&limit={PAGE}")
            for user in users:
                groups = frozenset(user.get("groups") or [])
                for server in (user.get("servers") or {}).values():
                    record = ServerRecord.from_spawner_state(server.get("state"))
                    gpus = record.gpu_count if record else 0
                    holdings.append(Holding(user["name"], groups, gpus))
            if len(users) < PAGE:
                return holdings
            offset += PAGE
