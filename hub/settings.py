"""The deployment settings hubflow reads from the environment, each checked and named on error."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hubflow.hub.jobs.kubeflow.discovery import KUBEFLOW_APIS

#: The profile set shipped with hubflow, used when HUBFLOW_PROFILES is not set.
DEFAULT_PROFILES = Path(__file__).resolve().parent.parent / "profiles" / "default.yaml"

MODES = ("local", "kubernetes")


class SettingsError(ValueError):
    """An environment variable holds a value hubflow cannot use; the message names it."""


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name}={raw!r}: must be a port number from 1 to 65535")
    return int(raw)


@dataclass(frozen=True)
class HubflowSettings:
    """Where hubflow listens, keeps its data and finds its profiles, and how users log in.

    On a cluster the hub binds `hub_ip` (0.0.0.0), users' pods reach it at `hub_connect_url`
    (its Service), the jobs service binds `jobs_ip` and is reached at `jobs_connect_url`, and the
    proxy runs on its own when `proxy_api_url` names its API.
    """

    mode: str = "local"
    ip: str = "127.0.0.1"
    port: int = 8000
    hub_port: int = 8081
    proxy_api_port: int = 8001
    jobs_port: int = 8090
    data_dir: Path = field(default_factory=lambda: Path.cwd() / "data")
    profile_paths: tuple[str, ...] = (str(DEFAULT_PROFILES),)
    authenticator: str = "demo"
    gpus: str = ""
    jobs_db_url: str | None = None
    namespace: str = "hubflow"
    hub_ip: str = "127.0.0.1"
    hub_connect_url: str | None = None
    proxy_api_url: str | None = None
    jobs_ip: str = "127.0.0.1"
    jobs_connect_url: str | None = None
    kubeflow_api: str = "auto"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> HubflowSettings:
        """Read HUBFLOW_* variables; a bad value raises SettingsError naming the variable."""
        mode = env.get("HUBFLOW_MODE", "local")
        if mode not in MODES:
            raise SettingsError(f"HUBFLOW_MODE={mode!r}: must be one of {', '.join(MODES)}")
        profiles = tuple(p for p in env.get("HUBFLOW_PROFILES", "").split(os.pathsep) if p)
        for path in profiles:
            if not Path(path).exists():
                raise SettingsError(f"HUBFLOW_PROFILES: {path!r} does not exist")
        kubeflow_api = env.get("HUBFLOW_KUBEFLOW_API", "auto")
        if kubeflow_api not in KUBEFLOW_APIS:
            choices = ", ".join(KUBEFLOW_APIS)
            raise SettingsError(f"HUBFLOW_KUBEFLOW_API={kubeflow_api!r}: must be one of {choices}")
        return cls(
            mode=mode,
            ip=env.get("HUBFLOW_IP", "127.0.0.1"),
            port=_port(env, "HUBFLOW_PORT", 8000),
            hub_port=_port(env, "HUBFLOW_HUB_PORT", 8081),
            proxy_api_port=_port(env, "HUBFLOW_PROXY_API_PORT", 8001),
            jobs_port=_port(env, "HUBFLOW_JOBS_PORT", 8090),
            data_dir=Path(env.get("HUBFLOW_DATA_DIR") or Path.cwd() / "data").resolve(),
            profile_paths=profiles or (str(DEFAULT_PROFILES),),
            authenticator=env.get("HUBFLOW_AUTHENTICATOR", "demo"),
            gpus=env.get("HUBFLOW_GPUS", ""),
            jobs_db_url=env.get("HUBFLOW_JOBS_DB_URL") or None,
            namespace=env.get("HUBFLOW_NAMESPACE", "hubflow"),
            hub_ip=env.get("HUBFLOW_HUB_IP", "127.0.0.1"),
            hub_connect_url=env.get("HUBFLOW_HUB_CONNECT_URL") or None,
            proxy_api_url=env.get("HUBFLOW_PROXY_API_URL") or None,
            jobs_ip=env.get("HUBFLOW_JOBS_IP", "127.0.0.1"),
            jobs_connect_url=env.get("HUBFLOW_JOBS_CONNECT_URL") or None,
            kubeflow_api=kubeflow_api,
        )
