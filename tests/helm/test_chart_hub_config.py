"""The hub's config as the chart runs it: files/jupyterhub_config.py executed with the rendered
Deployment's environment and mounted ConfigMaps (paths moved under a temporary folder, Secret
references given values), so the chart and hubflow's settings agree on every variable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.github import GitHubOAuthenticator
from traitlets.config import Config

from tests.helm.chart import NAMESPACE, hub_pod_here

#: What the example's Secrets hold, by (secret, key).
SECRETS = {
    ("hubflow-oidc", "client-id"): "hubflow",
    ("hubflow-oidc", "client-secret"): "s3cret",
    ("hubflow-github", "client-id"): "gh-id",
    ("hubflow-github", "client-secret"): "gh-secret",
    ("hubflow-db", "hub-url"): "postgresql+psycopg2://hub:pw@db.example.com/hub",
    ("hubflow-db", "jobs-url"): "postgresql+psycopg2://jobs:pw@db.example.com/jobs",
    ("hf-hubflow-proxy-token", "token"): "t" * 64,
    ("hf-hubflow-hub-crypt-key", "crypt-key"): "c" * 64,
}


def run_hub_config(
    objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Config, dict[str, Path]]:
    """Execute the chart's hub config as the hub pod would; return the config and where each
    of the pod's mount paths was placed."""
    pod = hub_pod_here(objects, tmp_path, SECRETS)
    for name in [n for n in os.environ if n.startswith(("HUBFLOW_", "OAUTH"))]:
        monkeypatch.delenv(name)
    for name, value in pod.env.items():
        monkeypatch.setenv(name, value)
    config = Config()
    code = compile(pod.config_file.read_text(encoding="utf-8"), str(pod.config_file), "exec")
    exec(code, {"get_config": lambda: config, "__file__": str(pod.config_file)})
    return config, pod.mounts


def test_gpu_example_hub_config(
    gpu_objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, mounts = run_hub_config(gpu_objects, tmp_path, monkeypatch)
    assert c.JupyterHub.spawner_class == "hubflow.spawner.kubernetes.HubflowKubeSpawner"
    assert c.KubeSpawner.namespace == "hubflow-users"
    assert c.JupyterHub.db_url == SECRETS[("hubflow-db", "hub-url")]
    assert c.JupyterHub.hub_ip == "0.0.0.0"
    assert c.JupyterHub.hub_connect_url == f"http://hf-hubflow-hub.{NAMESPACE}.svc:8081"
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.api_url == "http://hf-hubflow-proxy-api:8001"
    assert issubclass(c.JupyterHub.authenticator_class, GenericOAuthenticator)
    assert c.GenericOAuthenticator.username_claim == "preferred_username"
    assert c.OAuthenticator.allowed_groups == {"ml-team", "gpu-users"}
    assert c.Spawner.profile_paths == [str(mounts["/etc/hubflow/profiles"] / "profiles.yaml")]
    jobs = next(s for s in c.JupyterHub.services if s["name"] == "hubflow-jobs")
    assert jobs["environment"]["HUBFLOW_JOBS_DB_URL"] == SECRETS[("hubflow-db", "jobs-url")]


def test_default_hub_config_keeps_sqlite_on_the_pvc(
    default_objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, mounts = run_hub_config(default_objects, tmp_path, monkeypatch)
    data = mounts["/srv/hubflow/data"]
    assert c.JupyterHub.db_url == f"sqlite:///{data / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.cookie_secret_file == str(data / "jupyterhub_cookie_secret")
    assert c.KubeSpawner.namespace == NAMESPACE


def test_extra_config_runs_after_hubflows_wiring(
    github_objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, _ = run_hub_config(github_objects, tmp_path, monkeypatch)
    assert issubclass(c.JupyterHub.authenticator_class, GitHubOAuthenticator)
    assert c.GitHubOAuthenticator.allowed_organizations == {"example-org"}
    assert c.Authenticator.admin_users == {"ml-lead"}
