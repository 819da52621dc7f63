"""Wires hubflow into a JupyterHub configuration: mode, profiles, spawner, login and services.

Every jupyterhub_config.py imports this module, so it imports only settings and wiring; the
JupyterHub classes it wires in (login, admin page, proxy) are imported where they are wired, and
the spawners and services are named, not imported.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hubflow.hub.logs import quiet_hub_log
from hubflow.hub.orphans import stop_orphaned_services
from hubflow.hub.service_restarts import restart_services_promptly
from hubflow.hub.services import configure_culling, configure_jobs_service
from hubflow.hub.settings import (
    CullingSettings,
    HubflowSettings,
    JobsSettings,
    LocalSettings,
    SettingsError,
)
from hubflow.hub.stopping import stop_cleanly
from hubflow.profiles import ProfileError
from hubflow.profiles.source import profile_source


def _proxy_command() -> list[str]:
    """configurable-http-proxy as `make setup` installs it next to this Python, else from PATH."""
    beside = Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"
    return [str(beside)] if beside.exists() else ["configurable-http-proxy"]


def configure_login(c: Any, settings: HubflowSettings) -> None:
    """The demo login (loopback only) or an oauthenticator login with the provider's groups.

    A local hub that is not root cannot keep users apart: the demo says it serves one person,
    and a real login lets in only the account the hub runs as.
    """
    from hubflow.hub.auth import (  # a JupyterHub handler's world
        OAUTH_PROVIDERS,
        DemoAuthenticator,
        hub_account,
        oauth_authenticator,
        single_person_hook,
    )
    from hubflow.hub.forms import with_strict_forms

    single_person = settings.mode == "local" and os.geteuid() != 0
    if settings.authenticator == "demo":
        c.JupyterHub.authenticator_class = with_strict_forms(DemoAuthenticator)
        c.DemoAuthenticator.loopback_hub_api = settings.mode == "local"
        c.DemoAuthenticator.single_person = single_person
        print(DemoAuthenticator(config=c).login_banner(), file=sys.stderr)
        return
    if single_person:
        c.Authenticator.post_auth_hook = single_person_hook(hub_account())
    provider = OAUTH_PROVIDERS[settings.authenticator]
    # oauthenticator reads OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET and OAUTH_CALLBACK_URL itself.
    c.JupyterHub.authenticator_class = with_strict_forms(oauth_authenticator(provider))
    c.OAuthenticator.manage_groups = True
    c.OAuthenticator.enable_auth_state = True
    c.OAuthenticator.auth_state_groups_key = settings.oauth_groups_key
    if settings.authenticator in ("oidc", "generic"):
        c.GenericOAuthenticator.scope = ["openid", "profile", "email", "groups"]
        c.GenericOAuthenticator.username_claim = settings.oauth_username_claim
    if settings.allowed_groups:
        c.OAuthenticator.allowed_groups = set(settings.allowed_groups)


def check_local_binds(settings: HubflowSettings) -> None:
    """Local mode: refuse a port beyond loopback with the demo login, or with any login when
    the hub is not root (it cannot keep users apart)."""
    from hubflow.hub.auth import is_loopback_host

    binds = {"HUBFLOW_IP": settings.ip, "HUBFLOW_HUB_IP": settings.hub_ip}
    binds["HUBFLOW_JOBS_IP"] = settings.jobs_ip
    wide = [f"{n}={h or 'every address'}" for n, h in binds.items() if not is_loopback_host(h)]
    if not wide:
        return
    if settings.authenticator == "demo":
        raise SystemExit(
            f"hubflow: The demo login only listens on 127.0.0.1, but {', '.join(wide)} is beyond "
            "loopback. Configure a real authenticator "
            "(HUBFLOW_AUTHENTICATOR=github|gitlab|google|oidc) before serving other machines."
        )
    if os.geteuid() != 0:
        raise SystemExit(
            f"hubflow: {', '.join(wide)} is beyond loopback, but the hub is not root, so it "
            "cannot run each user as an account of their own and serves one person only, on "
            "this machine. Run it as root to serve others."
        )


def prepare_local_data_dir(data_dir: Path, databases: list[str]) -> None:
    """A root hub's data dir: its own files and SQLite `databases` (URLs) private, every parent
    passable so that users' accounts reach their workspaces and job directories (nothing else)."""
    from hubflow.launcher.runas import closed_parent
    from hubflow.spawner.accounts import secure_data_dir

    if os.geteuid() != 0:
        return
    closed = closed_parent(data_dir)
    if closed is not None:
        raise SystemExit(
            f"hubflow: users' accounts cannot pass through {closed} (mode "
            f"{closed.stat().st_mode & 0o777:o}) to reach their workspaces under "
            f"HUBFLOW_DATA_DIR={data_dir}. Put the data dir where every parent directory is "
            f"passable (e.g. /var/lib/hubflow), or run: chmod o+x {closed}"
        )
    sqlite = [
        Path(url.removeprefix("sqlite:///")) for url in databases if url.startswith("sqlite:///")
    ]
    secure_data_dir(data_dir, sqlite)


def configure_local_spawner(
    c: Any, settings: HubflowSettings, jobs: JobsSettings, local: LocalSettings
) -> None:
    """Local mode: users' servers as processes of their own accounts."""
    data_dir = settings.data_path
    prepare_local_data_dir(data_dir, [c.JupyterHub.db_url, jobs.database_url(data_dir)])
    c.JupyterHub.spawner_class = "hubflow.spawner.local.HubflowLocalSpawner"
    c.HubflowLocalSpawner.data_dir = str(data_dir)
    c.HubflowLocalSpawner.gpus = settings.gpus
    c.HubflowLocalSpawner.account_prefix = local.account_prefix
    c.HubflowLocalSpawner.accounts = local.account_map
    c.HubflowLocalSpawner.jobs_on_stop = local.jobs_on_stop
    c.HubflowLocalSpawner.job_network = local.job_network
    c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]


def configure(
    c: Any,
    settings: HubflowSettings | None = None,
    jobs: JobsSettings | None = None,
    culling: CullingSettings | None = None,
    local: LocalSettings | None = None,
) -> HubflowSettings:
    """Fill `c` (a traitlets Config) for the mode in `settings`; each part of the settings
    defaults to what the environment says (hub/settings.py)."""
    try:
        settings = settings or HubflowSettings.from_env()
        jobs = jobs or JobsSettings.from_env()
        culling = culling or CullingSettings.from_env()
        local = local or LocalSettings.from_env()
    except SettingsError as e:
        raise SystemExit(f"hubflow: {e}") from None
    try:
        profile_source(settings.profile_paths).watch(logging.getLogger("JupyterHub"))
    except ProfileError as e:
        # A bad profile file stops the hub before it starts, with the file, profile and field.
        raise SystemExit(f"hubflow: bad profiles, the hub will not start:\n{e}") from None

    if settings.mode == "local":
        check_local_binds(settings)
    data_dir = settings.data_path
    data_dir.mkdir(parents=True, exist_ok=True)
    # a hub killed without stopping its services left them running (and holding their ports)
    stop_orphaned_services(data_dir, logging.getLogger("JupyterHub"))
    c.JupyterHub.bind_url = f"http://{settings.ip}:{settings.port}"
    quiet_hub_log(c.JupyterHub.bind_url)
    stop_cleanly()
    restart_services_promptly()
    c.JupyterHub.hub_ip = settings.hub_ip
    if settings.hub_connect_url:
        c.JupyterHub.hub_connect_url = settings.hub_connect_url
    c.JupyterHub.hub_port = settings.hub_port
    c.JupyterHub.db_url = settings.hub_db_url or f"sqlite:///{data_dir / 'jupyterhub.sqlite'}"
    if settings.hub_db_url and not settings.hub_db_url.startswith("sqlite"):
        c.JupyterHub.db_kwargs = {
            "pool_size": settings.hub_db_pool_size,
            "max_overflow": settings.hub_db_max_overflow,
            "pool_pre_ping": True,
        }
    c.JupyterHub.cookie_secret_file = str(data_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.allow_named_servers = True
    # hubflow's spawn and progress pages extend JupyterHub's own (hub/templates).
    c.JupyterHub.template_paths = [str(Path(__file__).resolve().parent / "templates")]
    c.JupyterHub.cleanup_servers = settings.stop_servers_with_hub
    # (culling replaces it with a subclass, hub/services.py)
    c.JupyterHub.proxy_class = "hubflow.hub.proxy.HubflowProxy"
    c.ConfigurableHTTPProxy.command = _proxy_command()
    c.ConfigurableHTTPProxy.api_url = (
        settings.proxy_api_url or f"http://127.0.0.1:{settings.proxy_api_port}"
    )
    c.ConfigurableHTTPProxy.pid_file = str(data_dir / "jupyterhub-proxy.pid")
    # A proxy of its own (the chart's) reads its token from CONFIGPROXY_AUTH_TOKEN, as the hub does.
    c.ConfigurableHTTPProxy.should_start = settings.proxy_api_url is None

    configure_login(c, settings)

    jobs_url = configure_jobs_service(c, settings, jobs)
    # The admin view (/hub/hubflow/admin): servers by profile, GPUs in use, jobs by user and state.
    from hubflow.hub.admin import ADMIN_PATH, AdminViewHandler  # a JupyterHub handler's world

    c.JupyterHub.extra_handlers = [(ADMIN_PATH, AdminViewHandler, {"jobs_url": jobs_url})]

    if settings.mode == "local":
        configure_local_spawner(c, settings, jobs, local)
    else:
        # Pods through KubeSpawner; the cluster is the one the kubeconfig (or the pod's service
        # account) points at.
        c.JupyterHub.spawner_class = "hubflow.spawner.kubernetes.HubflowKubeSpawner"
        c.KubeSpawner.namespace = settings.namespace
        c.Spawner.cmd = ["jupyterhub-singleuser"]  # the image's
    c.Spawner.profile_paths = list(settings.profile_paths)
    c.Spawner.jobs_url = jobs_url
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 120
    configure_culling(c, settings, culling)
    return settings
