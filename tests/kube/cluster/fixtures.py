"""pytest fixtures of the real test cluster (imported by tests/kube/conftest.py).

`real_cluster` (session): the control plane, the node agent and the Kubeflow controllers, started
once per run (the binaries come from the build cache; the first run on a machine builds them).
`kube_ns` (function): a fresh namespace with the chart's hub RBAC, a Kueue LocalQueue and the
hub's kubeconfig (a TokenRequest token of the chart's ServiceAccount); deleted after the test.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kubernetes.client
import kubernetes.config
import pytest

from tests.kube.cluster.controlplane import ControlPlane, build_binaries
from tests.kube.cluster.hubaccount import hub_kubeconfig, install_runtime

T = TypeVar("T")
Obj = dict[str, Any]


class RealCluster:
    """What the Kubernetes tests use of a cluster, on the real API server (as the admin)."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.api_url = cp.api_url
        self.kubeconfig_path = cp.admin_kubeconfig
        self._resources: dict[str, tuple[str, bool]] = {}
        self._ssl = ssl.create_default_context(cafile=str(cp.pki_dir / "ca.crt"))
        self._ssl.load_cert_chain(cp.pki_dir / "admin.crt", cp.pki_dir / "admin.key")

    def client(self, kubeconfig: Path | None = None) -> kubernetes.client.ApiClient:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(kubeconfig or self.kubeconfig_path), client_configuration=configuration
        )
        return kubernetes.client.ApiClient(configuration)

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api_url + path, data, {"Content-Type": content_type}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=60, context=self._ssl) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _json(error.read())

    def _discover(self) -> None:
        groups = [("", "v1")]
        status, apis = self.request("GET", "/apis")
        for group in apis["groups"]:
            groups.append((group["name"], group["preferredVersion"]["version"]))
        for group, version in groups:
            base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
            status, listed = self.request("GET", base)
            if status != 200:
                continue
            for r in listed["resources"]:
                if "/" in r["name"]:
                    continue
                entry = (
                    base + "/{ns}" + r["name"] if r["namespaced"] else base + "/" + r["name"],
                    r["namespaced"],
                )
                for key in (
                    r["name"],
                    r["kind"].lower(),
                    f"{r['name']}.{group}" if group else r["name"],
                ):
                    if key not in self._resources or not group:
                        self._resources[key] = entry

    def path(self, kind: str, namespace: str | None = None) -> str:
        if kind.lower() not in self._resources:
            self._discover()
        template, namespaced = self._resources[kind.lower()]
        return template.replace(
            "{ns}", f"namespaces/{namespace}/" if namespaced and namespace else ""
        )

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        status, listed = self.request("GET", self.path(kind, namespace))
        assert status == 200, listed
        return list(listed["items"])

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        status, found = self.request("GET", f"{self.path(kind, namespace)}/{name}")
        return found if status == 200 else None

    def events_for(self, name: str, namespace: str = "default") -> list[Obj]:
        events = [
            e for e in self.objects("events", namespace) if e["involvedObject"]["name"] == name
        ]
        return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        """pods/log through the API server (which asks the node agent, as it asks a kubelet)."""
        query = f"?container={container}" if container else ""
        request = urllib.request.Request(
            f"{self.api_url}/api/v1/namespaces/{namespace}/pods/{name}/log{query}"
        )
        try:
            with urllib.request.urlopen(request, timeout=60, context=self._ssl) as response:
                return str(response.read().decode(errors="replace"))
        except urllib.error.HTTPError:
            return ""

    def wait_for(self, predicate: Callable[[], T], timeout: float = 60, interval: float = 0.2) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout}s")
            time.sleep(interval)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data or b"null")
    except ValueError:
        return [json.loads(line) for line in data.splitlines() if line.strip()]


@dataclass
class Namespace:
    """A test's namespace: its name and the hub's kubeconfig (the chart's ServiceAccount)."""

    name: str
    hub_kubeconfig: Path
    cluster: RealCluster


def cluster_unavailable() -> str:
    """Why this machine cannot run the real cluster ("" when it can)."""
    if os.geteuid() != 0:
        return "the real test cluster needs root (network namespaces for pods)"
    if not shutil.which("ip"):
        return "the real test cluster needs iproute2's `ip`"
    return ""


@contextlib.contextmanager
def running_control_plane(
    tmp_path_factory: pytest.TempPathFactory, name: str, kubeflow: bool = True
) -> Iterator[ControlPlane]:
    """A control plane for a session fixture (skipped where this machine cannot run one); its
    state in the run's temporary folder `name`; stopped, and its cluster number given back."""
    why = cluster_unavailable()
    if why:
        pytest.skip(why)
    cp = ControlPlane(tmp_path_factory.mktemp(name), build_binaries())
    try:
        cp.start(kubeflow=kubeflow)
        yield cp
    finally:
        cp.stop()
        Path(f"/run/hubflow-cluster-{cp.index}.pid").unlink(missing_ok=True)


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    with running_control_plane(tmp_path_factory, "cluster") as cp:
        install_runtime(cp)
        yield RealCluster(cp)


_numbers = itertools.count(1)


@pytest.fixture
def kube_ns(real_cluster: RealCluster, tmp_path: Path) -> Iterator[Namespace]:
    name = f"t{os.getpid() % 10000}-{next(_numbers)}"
    cp = real_cluster.cp
    cp.kubectl("create", "namespace", name)
    queue = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "LocalQueue",
             "metadata": {"name": "hubflow", "namespace": name}, "spec": {"clusterQueue": "hubflow"}}  # fmt: skip
    cp.kubectl("apply", "-f", "-", input=json.dumps(queue))
    kubeconfig = hub_kubeconfig(cp, tmp_path / "hub.kubeconfig", namespace=name)
    yield Namespace(name, kubeconfig, real_cluster)
    cp.kubectl("delete", "namespace", name, "--wait=false", check=False)
