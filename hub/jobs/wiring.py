"""Adds the jobs service to a JupyterHub configuration: the managed service, its role, the
custom submit scope and the grants that let users' servers call it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

SERVICE_NAME = "hubflow-jobs"
SUBMIT_SCOPE = "custom:hubflow:jobs:submit"
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"

#: What the service itself may do with its own token: find users, their groups and their
#: servers' state (the spawner's profile, GPUs, workspace and environment).
SERVICE_SCOPES = [
    "list:users",
    "read:users",
    "read:users:groups",
    "read:servers",
    "admin:server_state",
]

#: What a Kubernetes client needs from the hub's environment (JupyterHub gives its managed
#: services only the variables it is told to).
KUBERNETES_ENV = ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")

#: JupyterHub's own default scopes for a server's token, kept when we add ours.
DEFAULT_SERVER_TOKEN_SCOPES = ["access:servers!server", "users:activity!user"]


def _merge_role(
    roles: list[dict[str, Any]], name: str, scopes: list[str], **members: list[str]
) -> None:
    """Add scopes (and members) to the role `name` in `roles`, creating it if absent."""
    for role in roles:
        if role.get("name") == name:
            role["scopes"] = list(dict.fromkeys([*role.get("scopes", []), *scopes]))
            for kind, names in members.items():
                role[kind] = list(dict.fromkeys([*role.get(kind, []), *names]))
            return
    roles.append({"name": name, "scopes": list(scopes), **members})


def configure_jobs_service(
    c: Any,
    *,
    data_dir: Path,
    profile_paths: list[str],
    port: int = 8090,
    db_url: str | None = None,
    backend: str = "local",
    namespace: str = "default",
    kubeflow_api: str = "auto",
    ip: str = "127.0.0.1",
    connect_url: str | None = None,
) -> str:
    """Wire the jobs service into `c`; return the jobs API URL servers get as HUBFLOW_JOBS_URL.

    The submit scope is granted unfiltered: JupyterHub expands `custom:...!user` to
    `!user=NAME`, which HubAuth's check for the bare scope does not accept; the service itself
    ties every job to the token's user.

    `backend` is "local" or "kubernetes" (jobs as Kubeflow resources, created in the server's
    namespace or `namespace`; `kubeflow_api` "auto", "trainjob" or "v1", see docs/jobs-kubernetes.md).
    The service listens on `ip`; the hub, its proxy and users' servers reach it at `connect_url`
    (on a cluster, the hub's Service).
    """
    url = (connect_url or f"http://127.0.0.1:{port}").rstrip("/")
    command = [
        sys.executable,
        "-m",
        "hubflow.hub.jobs",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--ip",
        ip,
        *(arg for path in profile_paths for arg in ("--profiles", path)),
    ]
    if db_url:
        command += ["--db-url", db_url]
    service: dict[str, Any] = {"name": SERVICE_NAME, "url": url, "command": command}
    if backend == "kubernetes":
        command += ["--backend", "kubernetes", "--namespace", namespace]
        command += ["--kubeflow-api", kubeflow_api]
        service["environment"] = {k: os.environ[k] for k in KUBERNETES_ENV if k in os.environ}
    services = [s for s in c.JupyterHub.get("services", []) if s.get("name") != SERVICE_NAME]
    services.append(service)
    c.JupyterHub.services = services

    scopes = dict(c.JupyterHub.get("custom_scopes", {}))
    scopes[SUBMIT_SCOPE] = {"description": "Submit distributed jobs to the hubflow jobs service."}
    c.JupyterHub.custom_scopes = scopes

    roles = list(c.JupyterHub.get("load_roles", []))
    _merge_role(roles, SERVICE_NAME, SERVICE_SCOPES, services=[SERVICE_NAME])
    _merge_role(roles, "user", ["self", SUBMIT_SCOPE, ACCESS_SCOPE])
    c.JupyterHub.load_roles = roles

    token_scopes = c.Spawner.get("server_token_scopes", None) or DEFAULT_SERVER_TOKEN_SCOPES
    c.Spawner.server_token_scopes = list(dict.fromkeys([*token_scopes, SUBMIT_SCOPE, ACCESS_SCOPE]))
    return f"{url}/services/{SERVICE_NAME}/"
