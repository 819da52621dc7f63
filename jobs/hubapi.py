"""What the jobs service asks the hub with its own token: a user's server and its hubflow state."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from hubflow.launcher.contract import DEFAULT_MOUNT_PATH
from hubflow.profiles import Holding

#: Users per page when listing those with active servers.
PAGE = 200


@dataclass(frozen=True)
class ServerInfo:
    """What the spawner recorded about a running server (spawner/local.py get_state; for a
    pod, KubeSpawner's own state: namespace, pod name and workspace PVC)."""

    workspace: str
    gpus: list[str]
    environment: dict[str, str]
    profile: dict[str, Any]
    namespace: str = ""
    pvc_name: str = ""
    #: The claims of volumes made for this user (volume name -> PVC), on Kubernetes.
    claims: dict[str, str] = field(default_factory=dict)
    #: Local mode: how the server's processes run (account, cgroups, jobs' network).
    process: dict[str, Any] = field(default_factory=dict)
    #: The pod's uid, gid and fsGroup ("uid", "gid", "fs_gid"), on Kubernetes.
    run_as: dict[str, int] = field(default_factory=dict)


class ServerUnavailable(Exception):
    """The user's server is not running or carries no hubflow state; the message says which."""


class HubAPI:
    """A small client of the hub REST API, authenticated as the jobs service."""

    def __init__(self, api_url: str | None = None, token: str | None = None) -> None:
        self.api_url = (api_url or os.environ["JUPYTERHUB_API_URL"]).rstrip("/")
        self.token = token or os.environ["JUPYTERHUB_API_TOKEN"]

    async def _get(self, path: str) -> Any:
        response = await AsyncHTTPClient().fetch(
            f"{self.api_url}/{path}", headers={"Authorization": f"token {self.token}"}
        )
        return json.loads(response.body)

    async def server_info(self, user: str, server_name: str) -> ServerInfo:
        """The hubflow state of `user`'s server `server_name`; ServerUnavailable if none."""
        label = f"server '{server_name}'" if server_name else "the default server"
        try:
            model = await self._get(f"users/{quote(user, safe='')}")
        except HTTPClientError as e:
            raise ServerUnavailable(f"cannot look up user {user!r} in the hub: {e}") from None
        server = (model.get("servers") or {}).get(server_name)
        if not server or not server.get("ready"):
            raise ServerUnavailable(f"{label} of {user} is not running: start it first")
        spawner_state = server.get("state") or {}
        state = spawner_state.get("hubflow")
        if not state or not ("workspace" in state or "pod_name" in spawner_state):
            raise ServerUnavailable(f"{label} of {user} was not started by hubflow")
        profile = dict(state.get("profile", {}))
        mount_path = (profile.get("workspace") or {}).get("mount_path") or DEFAULT_MOUNT_PATH
        return ServerInfo(
            workspace=state.get("workspace", mount_path),
            gpus=[str(g) for g in state.get("gpus", [])],
            environment=dict(state.get("environment", {})),
            profile=profile,
            namespace=spawner_state.get("namespace") or "",
            pvc_name=spawner_state.get("pvc_name") or "",
            claims=dict(state.get("claims") or {}),
            run_as={k: int(v) for k, v in (state.get("run_as") or {}).items()},
            process=dict(state.get("process") or {}),
        )

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
                    profile = ((server.get("state") or {}).get("hubflow") or {}).get("profile")
                    gpus = int((profile or {}).get("gpu_count") or 0)
                    holdings.append(Holding(user["name"], groups, gpus))
            if len(users) < PAGE:
                return holdings
            offset += PAGE
