"""The hub's two managed services, added to a JupyterHub configuration: the jobs service (its
role, the custom submit scope and the grants that let users' servers call it) and the culler
(its role, the activity report in users' servers and the warning on the hub's pages).

Each service gets the hub's settings, as the hub resolved them, in its environment
(hub/settings.py), but for the hub database's URL; the culler gets no jobs settings (it asks the
jobs API, never the jobs database). Neither takes options of its own.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hubflow.hub.culling_notices import FILE_NAME, announcement
from hubflow.hub.settings import CullingSettings, EnvSettings, HubflowSettings, JobsSettings

JOBS_SERVICE = "hubflow-jobs"
CULLER_SERVICE = "hubflow-culler"
SUBMIT_SCOPE = "custom:hubflow:jobs:submit"
ACCESS_SCOPE = f"access:services!service={JOBS_SERVICE}"

#: What the jobs service may do with its own token: find users, their groups and their
#: servers' state (the spawner's profile, GPUs, workspace and environment).
JOBS_SERVICE_SCOPES = [
    "list:users",
    "read:users",
    "read:users:groups",
    "read:servers",
    "admin:server_state",
]

#: What idle-culler needs (users and their servers' activity, stopping servers), plus the
#: servers' state, where hubflow's spawner records the profile, and the jobs API (which servers
#: have unfinished jobs).
CULLER_SCOPES = [
    "list:users",
    "read:users:activity",
    "read:servers",
    "delete:servers",
    "admin:server_state",
    ACCESS_SCOPE,
]

#: The Jupyter server extension in users' servers that reports their real activity.
ACTIVITY_EXTENSION = "hubflow.launcher.activity"

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


def _add_service(c: Any, service: dict[str, Any]) -> None:
    services = [s for s in c.JupyterHub.get("services", []) if s.get("name") != service["name"]]
    c.JupyterHub.services = [*services, service]


#: Settings of the hub's own that no service gets: the hub database's URL (with its password).
HUB_ONLY = ("HUBFLOW_HUB_DB_URL",)


def _service_environment(*settings: EnvSettings) -> dict[str, str]:
    """The settings as the hub resolved them (but the hub's own, HUB_ONLY), and where a
    Kubernetes client finds its cluster."""
    environment: dict[str, str] = {}
    for part in settings:
        environment.update(part.environment())
    for name in HUB_ONLY:
        environment.pop(name, None)
    environment.update({k: os.environ[k] for k in KUBERNETES_ENV if k in os.environ})
    return environment


def jobs_service_url(settings: HubflowSettings) -> str:
    """Where the hub, its proxy, its services and users' servers reach the jobs service."""
    return (settings.jobs_connect_url or f"http://127.0.0.1:{settings.jobs_port}").rstrip("/")


def jobs_api_url(settings: HubflowSettings) -> str:
    """The jobs API's base URL (servers get it as HUBFLOW_JOBS_URL)."""
    return f"{jobs_service_url(settings)}/services/{JOBS_SERVICE}/"


def configure_jobs_service(c: Any, settings: HubflowSettings, jobs: JobsSettings) -> str:
    """Wire the jobs service into `c`; return the jobs API URL servers get as HUBFLOW_JOBS_URL.

    The submit scope is granted unfiltered: JupyterHub expands `custom:...!user` to
    `!user=NAME`, which HubAuth's check for the bare scope does not accept; the service itself
    ties every job to the token's user. The service listens on `jobs_ip`; the hub, its proxy and
    users' servers reach it at `jobs_connect_url` (on a cluster, the hub's Service).
    """
    url = jobs_service_url(settings)
    _add_service(
        c,
        {
            "name": JOBS_SERVICE,
            "url": url,
            "command": [sys.executable, "-m", "hubflow.jobs"],
            "environment": _service_environment(settings, jobs),
        },
    )
    scopes = dict(c.JupyterHub.get("custom_scopes", {}))
    scopes[SUBMIT_SCOPE] = {"description": "Submit distributed jobs to the hubflow jobs service."}
    c.JupyterHub.custom_scopes = scopes

    roles = list(c.JupyterHub.get("load_roles", []))
    _merge_role(roles, JOBS_SERVICE, JOBS_SERVICE_SCOPES, services=[JOBS_SERVICE])
    _merge_role(roles, "user", ["self", SUBMIT_SCOPE, ACCESS_SCOPE])
    c.JupyterHub.load_roles = roles

    token_scopes = c.Spawner.get("server_token_scopes", None) or DEFAULT_SERVER_TOKEN_SCOPES
    c.Spawner.server_token_scopes = list(dict.fromkeys([*token_scopes, SUBMIT_SCOPE, ACCESS_SCOPE]))
    return jobs_api_url(settings)


def configure_culling(c: Any, settings: HubflowSettings, culling: CullingSettings) -> None:
    """Wire culling into `c` (unless HUBFLOW_CULLING=off). The culler gets no jobs settings:
    it asks the jobs API, never the jobs database (whose URL may hold a password)."""
    if not culling.enabled:
        return
    _add_service(
        c,
        {
            "name": CULLER_SERVICE,
            "command": [sys.executable, "-m", "hubflow.culling"],
            "environment": _service_environment(settings, culling),
        },
    )
    roles = [r for r in c.JupyterHub.get("load_roles", []) if r.get("name") != CULLER_SERVICE]
    roles.append({"name": CULLER_SERVICE, "scopes": CULLER_SCOPES, "services": [CULLER_SERVICE]})
    c.JupyterHub.load_roles = roles

    # Activity is what users' servers report (hubflow's extension), not proxied traffic: the
    # hub no longer takes the proxy's per-route traffic (an open tab's polling) ...
    c.JupyterHub.proxy_class = "hubflow.hub.proxy.ActivityBlindProxy"
    # (the hub still reads the routes, to restore those a restarted proxy lost)
    c.JupyterHub.last_activity_interval = min(300, 5 * culling.activity_interval)
    c.JupyterHub.activity_resolution = min(30, culling.activity_interval)
    # ... and jupyterhub-singleuser's own report, which counts that polling too, is off. The
    # extension reads its interval in whole seconds, as resolved here.
    environment = dict(c.Spawner.get("environment", {}))
    environment.update(
        JUPYTERHUB_ACTIVITY_INTERVAL="0",
        HUBFLOW_ACTIVITY_INTERVAL=str(culling.activity_interval),
    )
    c.Spawner.environment = environment
    args = list(c.Spawner.get("args", []))
    args.append(f"--ServerApp.jpserver_extensions={{'{ACTIVITY_EXTENSION}': True}}")
    c.Spawner.args = args

    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars["announcement"] = announcement(settings.data_path / FILE_NAME)
    c.JupyterHub.template_vars = template_vars
