"""Adds culling to a JupyterHub configuration: the culling service and its role, the activity
report in users' servers, and the warning on the hub's pages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hubflow.hub.culling.notices import FILE_NAME, announcement
from hubflow.hub.culling.proxy import ActivityBlindProxy
from hubflow.hub.culling.settings import CullingSettings
from hubflow.hub.jobs.app import ServiceConfig

SERVICE_NAME = "hubflow-culler"

#: What idle-culler needs (users and their servers' activity, stopping servers), plus the
#: servers' state, where hubflow's spawner records the profile.
SERVICE_SCOPES = [
    "list:users",
    "read:users:activity",
    "read:servers",
    "delete:servers",
    "admin:server_state",
]

ACTIVITY_EXTENSION = "hubflow.hub.culling.activity"


def _environment(settings: CullingSettings) -> dict[str, str]:
    return {
        "HUBFLOW_CULL_IDLE_TIMEOUT": str(settings.idle_timeout),
        "HUBFLOW_CULL_GPU_IDLE_TIMEOUT": str(settings.gpu_idle_timeout),
        "HUBFLOW_CULL_MAX_AGE": str(settings.max_age),
        "HUBFLOW_CULL_WARN_BEFORE": str(settings.warn_before),
        "HUBFLOW_CULL_EVERY": str(settings.every),
    }


def configure_culling(
    c: Any,
    *,
    data_dir: Path,
    profile_paths: list[str],
    jobs_db_url: str | None = None,
    settings: CullingSettings | None = None,
) -> CullingSettings:
    """Wire culling into `c` (unless HUBFLOW_CULLING=off); return the settings in force.
    `jobs_db_url` is the jobs service's database (default: its SQLite file in `data_dir`)."""
    settings = settings or CullingSettings.from_env()
    if not settings.enabled:
        return settings
    command = [
        sys.executable,
        "-m",
        "hubflow.hub.culling",
        "--data-dir",
        str(data_dir),
        "--jobs-db-url",
        jobs_db_url or ServiceConfig(data_dir, (), port=0).database_url,
        *(arg for path in profile_paths for arg in ("--profiles", path)),
    ]
    services = [s for s in c.JupyterHub.get("services", []) if s.get("name") != SERVICE_NAME]
    services.append(
        {"name": SERVICE_NAME, "command": command, "environment": _environment(settings)}
    )
    c.JupyterHub.services = services
    roles = [r for r in c.JupyterHub.get("load_roles", []) if r.get("name") != SERVICE_NAME]
    roles.append({"name": SERVICE_NAME, "scopes": SERVICE_SCOPES, "services": [SERVICE_NAME]})
    c.JupyterHub.load_roles = roles

    # Activity is what users' servers report (hubflow's extension), not proxied traffic: the
    # hub no longer takes the proxy's per-route traffic (an open tab's polling) ...
    c.JupyterHub.proxy_class = ActivityBlindProxy
    # (the hub still reads the routes, to restore those a restarted proxy lost)
    c.JupyterHub.last_activity_interval = min(300, 5 * settings.activity_interval)
    c.JupyterHub.activity_resolution = min(30, settings.activity_interval)
    # ... and jupyterhub-singleuser's own report, which counts that polling too, is off.
    environment = dict(c.Spawner.get("environment", {}))
    environment.update(
        JUPYTERHUB_ACTIVITY_INTERVAL="0",
        HUBFLOW_ACTIVITY_INTERVAL=str(settings.activity_interval),
    )
    c.Spawner.environment = environment
    args = list(c.Spawner.get("args", []))
    args.append(f"--ServerApp.jpserver_extensions={{'{ACTIVITY_EXTENSION}': True}}")
    c.Spawner.args = args

    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars["announcement"] = announcement(data_dir / FILE_NAME)
    c.JupyterHub.template_vars = template_vars
    return settings
