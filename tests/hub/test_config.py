"""The hub's wiring: settings from the environment, login choice, and the demo login's guard."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.github import GitHubOAuthenticator
from traitlets.config import Config

from hubflow.hub.auth import DemoAuthenticator, is_loopback_url
from hubflow.hub.config import configure
from hubflow.hub.forms import StrictFormsMixin
from hubflow.hub.settings import DEFAULT_PROFILES, HubflowSettings, JobsSettings, SettingsError


def settings(tmp_path: Path, **env: str) -> HubflowSettings:
    return HubflowSettings.from_env({"HUBFLOW_DATA_DIR": str(tmp_path), **env})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HUBFLOW_MODE": "cloud"}, "HUBFLOW_MODE='cloud': must be one of local, kubernetes"),
        ({"HUBFLOW_PORT": "80a"}, "HUBFLOW_PORT='80a': must be a port number"),
        ({"HUBFLOW_JOBS_PORT": "70000"}, "HUBFLOW_JOBS_PORT='70000'"),
        ({"HUBFLOW_PROFILES": "/no/such.yaml"}, "HUBFLOW_PROFILES: '/no/such.yaml' does not exist"),
        ({"HUBFLOW_PORT": "9" * 5000}, "HUBFLOW_PORT: longer than 4096 characters"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace("(", r"\(")):
        settings(tmp_path, **env)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"HUBFLOW_KUBEFLOW_API": "mpi"},
            "HUBFLOW_KUBEFLOW_API='mpi': must be one of auto, trainjob, v1",
        ),
        ({"HUBFLOW_JOB_TTL": "-1"}, "HUBFLOW_JOB_TTL='-1': must be a duration"),
    ],
)
def test_bad_jobs_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        JobsSettings.from_env(env)


def test_defaults_are_local_mode_on_loopback_with_the_shipped_profiles(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert (s.mode, s.ip, s.port, s.authenticator) == ("local", "127.0.0.1", 8000, "demo")
    assert s.profile_paths == [str(DEFAULT_PROFILES)]


def test_local_mode_config(tmp_path: Path) -> None:
    c = Config()
    configure(c, settings(tmp_path, HUBFLOW_PORT="8123"))
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8123"
    assert c.JupyterHub.spawner_class == "hubflow.spawner.local.HubflowLocalSpawner"
    assert issubclass(c.JupyterHub.authenticator_class, (DemoAuthenticator, StrictFormsMixin))
    assert c.Spawner.jobs_url.endswith("/services/hubflow-jobs/")
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"


@pytest.mark.parametrize(
    ("name", "provider"), [("github", GitHubOAuthenticator), ("oidc", GenericOAuthenticator)]
)
def test_oauth_login_maps_provider_groups(tmp_path: Path, name: str, provider: type) -> None:
    c = Config()
    configure(c, settings(tmp_path, HUBFLOW_AUTHENTICATOR=name))
    assert issubclass(c.JupyterHub.authenticator_class, provider)
    assert issubclass(c.JupyterHub.authenticator_class, StrictFormsMixin)
    assert c.OAuthenticator.manage_groups is True
    assert c.OAuthenticator.auth_state_groups_key == "oauth_user.groups"


def test_kubernetes_mode_spawns_pods_in_the_namespace(tmp_path: Path) -> None:
    c = Config()
    configure(c, settings(tmp_path, HUBFLOW_MODE="kubernetes", HUBFLOW_NAMESPACE="ml"))
    assert c.JupyterHub.spawner_class == "hubflow.spawner.kubernetes.HubflowKubeSpawner"
    assert c.KubeSpawner.namespace == "ml"
    assert c.Spawner.jobs_url.endswith("/services/hubflow-jobs/")


def test_jobs_settings_reach_the_jobs_service_whole(tmp_path: Path) -> None:
    c = Config()
    env = {"HUBFLOW_JOBS_DB_URL": "postgresql://jobs@db/jobs", "HUBFLOW_JOB_TTL": "2h"}
    configure(c, settings(tmp_path), JobsSettings.from_env(env))
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "hubflow-jobs"]
    assert service["command"][1:] == ["-m", "hubflow.jobs"]
    assert service["environment"]["HUBFLOW_JOBS_DB_URL"] == "postgresql://jobs@db/jobs"
    assert service["environment"]["HUBFLOW_JOB_TTL"] == "7200"
    assert service["environment"]["HUBFLOW_DATA_DIR"] == str(tmp_path)


def test_unknown_authenticator_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="HUBFLOW_AUTHENTICATOR='ldap': must be one of"):
        settings(tmp_path, HUBFLOW_AUTHENTICATOR="ldap")


def test_a_bad_setting_stops_the_hub_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBFLOW_JOB_TTL", "soon")
    with pytest.raises(SystemExit, match="HUBFLOW_JOB_TTL='soon': must be a duration"):
        configure(Config())


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("http://:8000", False),
        ("http://0.0.0.0:8000", False),
        ("http://10.1.2.3:8000", False),
    ],
)
def test_loopback_detection(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_demo_login_gives_groups_and_refuses_wrong_passwords() -> None:
    auth = DemoAuthenticator()
    ok = asyncio.run(auth.authenticate(None, {"username": "bob", "password": "hubflow"}))
    assert ok == {"name": "bob", "groups": ["ml-team"], "admin": False}
    assert asyncio.run(auth.authenticate(None, {"username": "bob", "password": "x"})) is None
    assert asyncio.run(auth.authenticate(None, {"username": "eve", "password": "hubflow"})) is None
    assert "gpu-users" in auth.login_banner()


def test_on_a_cluster_the_hub_and_jobs_service_listen_for_pods_at_their_service(
    tmp_path: Path,
) -> None:
    c = Config()
    configure(
        c,
        settings(
            tmp_path,
            HUBFLOW_MODE="kubernetes",
            HUBFLOW_HUB_IP="0.0.0.0",
            HUBFLOW_HUB_CONNECT_URL="http://hub:8081",
            HUBFLOW_JOBS_IP="0.0.0.0",
            HUBFLOW_JOBS_CONNECT_URL="http://hub:8090/",
            HUBFLOW_PROXY_API_URL="http://proxy-api:8001",
        ),
    )
    assert (c.JupyterHub.hub_ip, c.JupyterHub.hub_connect_url) == ("0.0.0.0", "http://hub:8081")
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.api_url == "http://proxy-api:8001"
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "hubflow-jobs"]
    assert service["url"] == "http://hub:8090"
    assert service["environment"]["HUBFLOW_JOBS_IP"] == "0.0.0.0"
    assert service["environment"]["HUBFLOW_MODE"] == "kubernetes"
    assert c.Spawner.jobs_url == "http://hub:8090/services/hubflow-jobs/"
