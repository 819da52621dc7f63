"""The chart's hub and proxy, run as the chart runs them, against the simulated cluster: the hub
from the chart's config file and the rendered Deployment's environment, configurable-http-proxy
from the proxy Deployment's command, both sharing the token from the Secret; Services' names
stand for 127.0.0.1 and free ports. A user logs in through the proxy and reaches a server pod
that the hub started and routed."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.helm.chart import NAMESPACE, RELEASE, find, hub_container, hub_pod_here, render
from tests.helpers.hubclient import HubClient, HubProcess, free_port
from tests.kube.conftest import k8s_cluster, k8s_nodes, k8s_options  # noqa: F401 (fixtures)
from tests.kube.sim import Simulator

PROXY = Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"
#: What the simulated cluster needs and a real one would not (see tests/kube/hub_config.py),
#: given the way an operator gives extra config: hub.extraConfig.
SIMULATOR_CONFIG = 'c.KubeSpawner.args = ["--ServerApp.allow_root=True"]\n'


class Addresses:
    """Free local ports standing for the chart's Services, and the rewrite of its addresses."""

    def __init__(self) -> None:
        self.hub, self.jobs, self.http, self.api = (free_port() for _ in range(4))
        fullname = f"{RELEASE}-hubflow"
        self.rewrites = {
            f"{fullname}-hub.{NAMESPACE}.svc:8081": f"127.0.0.1:{self.hub}",
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


def test_the_charts_hub_and_proxy_serve_a_users_pod(
    k8s_cluster: Simulator,  # noqa: F811 (the fixture)
    hub_factory: Callable[..., HubProcess],
    proxy_here: Callable[[list[str], dict[str, str], str], None],
    tmp_path: Path,
) -> None:
    objects = render(
        {
            "users": {"namespace": "default"},
            "hub": {"extraConfig": {"90-simulator": SIMULATOR_CONFIG}},
        }
    )
    token = secrets.token_hex(32)
    pod = hub_pod_here(
        objects, tmp_path / "hub-pod", {(f"{RELEASE}-hubflow-proxy-token", "token"): token}
    )
    at = Addresses()

    # The proxy, as its Deployment runs it, on local ports.
    container = find(objects, "Deployment", "-proxy")["spec"]["template"]["spec"]["containers"][0]
    flags = {
        "--ip=": "--ip=127.0.0.1",
        "--api-ip=": "--api-ip=127.0.0.1",
        "--port=8000": f"--port={at.http}",
        "--api-port=8001": f"--api-port={at.api}",
    }
    command = [flags.get(arg, at.here(arg)) for arg in container["command"]]
    assert command[0] == "configurable-http-proxy"
    health = f"http://127.0.0.1:{at.http}" + container["readinessProbe"]["httpGet"]["path"]
    proxy_here([str(PROXY), *command[1:]], {**os.environ, "CONFIGPROXY_AUTH_TOKEN": token}, health)

    # The hub, as its Deployment runs it: the chart's config file and environment.
    env = {name: at.here(value) for name, value in pod.env.items()}
    env.update(
        HUBFLOW_HUB_PORT=str(at.hub),
        HUBFLOW_JOBS_PORT=str(at.jobs),
        KUBECONFIG=str(k8s_cluster.kubeconfig_path),  # in a pod: its service account
    )
    hub = hub_factory(
        start=False,
        data_dir=Path(env["HUBFLOW_DATA_DIR"]),
        profiles=[env["HUBFLOW_PROFILES"]],
        extra_env=env,
        config_file=pod.config_file,
    )
    hub.port, hub.hub_port, hub.jobs_port, hub.proxy_api_port = at.http, at.hub, at.jobs, at.api
    hub.start()
    # The probes the hub's Deployment declares answer on the hub's own port.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = hub_container(objects)[probe]["httpGet"]["path"]
        assert requests.get(f"http://127.0.0.1:{at.hub}{path}", timeout=30).status_code == 200

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
    [server_pod] = [
        p
        for p in k8s_cluster.objects("pods", "default")
        if p["metadata"].get("labels", {}).get("component") == "singleuser-server"
    ]
    assert routes["/user/alice"]["target"].startswith(f"http://{server_pod['status']['podIP']}:")
    assert (Path(env["HUBFLOW_DATA_DIR"]) / "jupyterhub.sqlite").is_file()
    alice.stop_server()
