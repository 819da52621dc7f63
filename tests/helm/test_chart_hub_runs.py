"""The chart's hub and proxy, run as the chart runs them, on the real test cluster: the chart's
objects that the API server keeps (its Namespace for users with Pod Security enforced, the
ServiceAccount, RBAC, NetworkPolicies, ConfigMaps and Secrets) applied into the test's namespace;
the hub from the chart's config file and the rendered Deployment's environment, talking as the
chart's ServiceAccount; configurable-http-proxy from the proxy Deployment's command, both sharing
the token from the Secret. Services' names stand for this machine's addresses and free ports (the
hub's at the cluster bridge's host address, where pods reach it). A user logs in through the
proxy and reaches a server pod that the hub started and routed."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helm.chart import RELEASE, find, hub_container, hub_pod_here, render
from tests.helpers.hubclient import HubClient, HubProcess, free_port
from tests.kube.cluster.fixtures import Namespace, kube_ns, real_cluster  # noqa: F401 (fixtures)

PROXY = Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"
#: What the test cluster's node agent needs and a real kubelet would not (see
#: tests/kube/hub_config.py), given the way an operator gives extra config: hub.extraConfig.
NODE_AGENT_CONFIG = 'c.KubeSpawner.args = ["--ServerApp.allow_root=True"]\n'
#: The chart's objects the API server keeps here; the Deployments (run on this machine), their
#: Services (addresses here), PodDisruptionBudgets and the hub's data PVC are left out.
APPLIED_KINDS = {"Namespace", "ServiceAccount", "Secret", "ConfigMap", "ClusterRole",
                 "ClusterRoleBinding", "Role", "RoleBinding", "NetworkPolicy"}  # fmt: skip
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


class Addresses:
    """Free ports standing for the chart's Services, and the rewrite of its addresses: the hub's
    Service is the cluster bridge's host address (`host`), where pods reach the hub and the jobs
    service; the proxy's API is on 127.0.0.1."""

    def __init__(self, namespace: str, host: str) -> None:
        self.host = host
        self.hub, self.jobs, self.http, self.api = (free_port() for _ in range(4))
        fullname = f"{RELEASE}-hubflow"
        self.rewrites = {
            f"{fullname}-hub.{namespace}.svc:8081": f"{host}:{self.hub}",
            f"{fullname}-hub.{namespace}.svc:8090": f"{host}:{self.jobs}",
            f"{fullname}-proxy-api:8001": f"127.0.0.1:{self.api}",
        }

    def here(self, value: str) -> str:
        for service, local in self.rewrites.items():
            value = value.replace(service, local)
        return value


@pytest.fixture
def proxy_here(tmp_path: Path) -> Iterator[Callable[[list[str], dict[str, str], str], None]]:
    """Start configurable-http-proxy with a command and environment and wait until `health_url`
    answers; stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []
    log_path = tmp_path / "proxy.log"

    def start(command: list[str], env: dict[str, str], health_url: str) -> None:
        with open(log_path, "ab") as log:
            started.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and started[-1].poll() is None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(health_url, timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise AssertionError(f"the proxy did not answer at {health_url}:\n{log_path.read_text()}")

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(30)


@dataclass
class ChartHub:
    """The chart's hub and proxy started here: the hub, the local ports, the shared token."""

    hub: HubProcess
    at: Addresses
    token: str
    env: dict[str, str]
    objects: list[dict[str, Any]]


def rendered_secrets(objects: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(Secret name, key) -> value of every Secret the chart renders (the crypt key, ...)."""
    return {
        (o["metadata"]["name"], key): base64.b64decode(value).decode()
        for o in objects
        if o["kind"] == "Secret"
        for key, value in o.get("data", {}).items()
    }


def apply_chart(
    ns: Namespace, objects: list[dict[str, Any]], given: dict[tuple[str, str], str]
) -> None:
    """Apply the chart's objects of APPLIED_KINDS as `helm install` would (as the admin), in the
    release's namespace `ns`; the Secrets with the `given` values."""
    docs = []
    for o in objects:
        if o["kind"] not in APPLIED_KINDS:
            continue
        doc = {**o, "metadata": dict(o["metadata"])}
        if o["kind"] not in CLUSTER_SCOPED:
            doc["metadata"].setdefault("namespace", ns.name)
        if o["kind"] == "Secret":
            name = o["metadata"]["name"]
            data = {
                k: base64.b64encode(v.encode()).decode() for (n, k), v in given.items() if n == name
            }
            doc["data"] = {**doc.get("data", {}), **data}
        docs.append(doc)
    ns.cluster.cp.apply(docs)


@pytest.fixture
def chart_hub(
    kube_ns: Namespace,  # noqa: F811 (the fixture)
    hub_factory: Callable[..., HubProcess],
    proxy_here: Callable[[list[str], dict[str, str], str], None],
    tmp_path: Path,
) -> Iterator[Callable[..., ChartHub]]:
    """Start the chart's proxy and hub, rendered with `values` (and `secrets` for the Secrets
    the values name) for a release in `kube_ns` with its users' namespace `<kube_ns>-users`, on
    local ports; the hub talks to the real API server as the chart's ServiceAccount."""
    cp = kube_ns.cluster.cp
    users = f"{kube_ns.name}-users"
    cluster_objects: list[tuple[str, str]] = []

    def start(
        values: dict[str, Any], secrets_given: dict[tuple[str, str], str] | None = None
    ) -> ChartHub:
        extra = {"90-node-agent": NODE_AGENT_CONFIG}
        values = {**values, "users": {"namespace": users}}
        values["hub"] = {**values.get("hub", {}), "extraConfig": extra}
        objects = render(values, namespace=kube_ns.name)
        token = secrets.token_hex(32)
        given = {
            **rendered_secrets(objects),
            (f"{RELEASE}-hubflow-proxy-token", "token"): token,
            **(secrets_given or {}),
        }
        apply_chart(kube_ns, objects, given)
        cluster_objects.extend(
            (o["kind"].lower(), o["metadata"]["name"])
            for o in objects
            if o["kind"] in CLUSTER_SCOPED
        )
        account = find(objects, "ServiceAccount")["metadata"]["name"]
        kubeconfig = cp.token_kubeconfig(tmp_path / "chart-hub.kubeconfig", kube_ns.name, account)
        pod = hub_pod_here(objects, tmp_path / "hub-pod", given)
        at = Addresses(kube_ns.name, cp.net.host_ip)

        # The proxy, as its Deployment runs it, on local ports.
        spec = find(objects, "Deployment", "-proxy")["spec"]["template"]["spec"]
        container = spec["containers"][0]
        flags = {
            "--ip=": "--ip=127.0.0.1",
            "--api-ip=": "--api-ip=127.0.0.1",
            "--port=8000": f"--port={at.http}",
            "--api-port=8001": f"--api-port={at.api}",
        }
        command = [flags.get(arg, at.here(arg)) for arg in container["command"]]
        assert command[0] == "configurable-http-proxy"
        health = f"http://127.0.0.1:{at.http}" + container["readinessProbe"]["httpGet"]["path"]
        env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": token}
        proxy_here([str(PROXY), *command[1:]], env, health)

        # The hub, as its Deployment runs it: the chart's config file and environment.
        hub_env = {name: at.here(value) for name, value in pod.env.items()}
        hub_env.update(
            HUBFLOW_HUB_PORT=str(at.hub),
            HUBFLOW_JOBS_PORT=str(at.jobs),
            KUBECONFIG=str(kubeconfig),  # in a pod: its service account's token
        )
        hub = hub_factory(
            start=False,
            data_dir=Path(hub_env["HUBFLOW_DATA_DIR"]),
            profiles=[hub_env["HUBFLOW_PROFILES"]],
            extra_env=hub_env,
            config_file=pod.config_file,
        )
        hub.port, hub.hub_port, hub.jobs_port, hub.proxy_api_port = at.http, at.hub, at.jobs, at.api
        hub.start()
        return ChartHub(hub, at, token, hub_env, objects)

    yield start
    for kind, name in cluster_objects:
        cp.kubectl("delete", kind, name, "--wait=false", "--ignore-not-found", check=False)


def test_the_charts_hub_and_proxy_serve_a_users_pod(
    kube_ns: Namespace,  # noqa: F811 (the fixture)
    chart_hub: Callable[..., ChartHub],
) -> None:
    started = chart_hub({})
    hub, at, token, env, objects = (
        started.hub, started.at, started.token, started.env, started.objects
    )  # fmt: skip
    # The probes the hub's Deployment declares answer on the hub's own port.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = hub_container(objects)[probe]["httpGet"]["path"]
        assert requests.get(f"http://{at.host}:{at.hub}{path}", timeout=30).status_code == 200

    alice = HubClient(hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})
    # The hub adds the server's route to the proxy as the spawn ends; poll until it serves.
    deadline = time.monotonic() + 60
    while (answer := alice.get(alice.server_url() + "api", timeout=30)).status_code != 200:
        assert time.monotonic() < deadline, f"{answer.status_code} {answer.text[:2000]}"
        time.sleep(0.5)
    assert "version" in answer.json()

    routes = requests.get(
        f"http://127.0.0.1:{at.api}/api/routes",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    ).json()
    assert "/user/alice" in routes, routes
    # The server pod is in the users' namespace, which enforces Pod Security's restricted level.
    users = f"{kube_ns.name}-users"
    namespace = kube_ns.cluster.get("namespaces", "", users)
    assert namespace is not None
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    [server_pod] = [
        p
        for p in kube_ns.cluster.objects("pods", users)
        if p["metadata"].get("labels", {}).get("component") == "singleuser-server"
    ]
    assert routes["/user/alice"]["target"].startswith(f"http://{server_pod['status']['podIP']}:")
    assert (Path(env["HUBFLOW_DATA_DIR"]) / "jupyterhub.sqlite").is_file()
    alice.stop_server()


def test_a_real_login_install_starts_with_the_charts_crypt_key(
    chart_hub: Callable[..., ChartHub],
) -> None:
    """GitHub login: oauthenticator keeps auth state, which needs JUPYTERHUB_CRYPT_KEY; the hub
    starts with the key from the chart's Secret and sends a user to GitHub to log in."""
    client = {("gh-oauth", "client-id"): "hubflow-id", ("gh-oauth", "client-secret"): "s3cret"}
    values = {
        "auth": {
            "type": "github",
            "client": {"secretName": "gh-oauth"},
            "callbackUrl": "https://hub.example.com/hub/oauth_callback",
        }
    }
    started = chart_hub(values, client)
    assert len(bytes.fromhex(started.env["JUPYTERHUB_CRYPT_KEY"])) == 32
    health = f"http://{started.at.host}:{started.at.hub}/hub/health"
    assert requests.get(health, timeout=30).status_code == 200
    login = requests.get(
        f"http://127.0.0.1:{started.at.http}/hub/oauth_login", allow_redirects=False, timeout=30
    )
    assert login.status_code == 302
    assert login.headers["Location"].startswith("https://github.com/login/oauth/authorize")
    assert "client_id=hubflow-id" in login.headers["Location"]
