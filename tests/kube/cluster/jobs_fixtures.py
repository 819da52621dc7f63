"""Fixtures of the jobs tests on real control planes (imported by tests/kube/conftest.py).

`jobs_ns` (function): `kube_ns` (the cluster with the real Kubeflow controllers) with workspace
claims for alice, bob and carol; `stand_in` (function): a stand-in for the hub's API (HubStandIn);
`jobs_service` (function): jobs_service(kubeflow_api, data_dir=None, ns=jobs_ns) starts
`python -m hubflow.jobs` in Kubernetes mode as the hub's account of the namespace (JobsService).
`bare_cluster` (session): a second real control plane with no Kubeflow controllers, whose Kubeflow
CRDs and ClusterTrainingRuntimes a test sets with `.serve(...)`: the released CRDs of the
Training Operator ("v1") and of Trainer ("v2"), or Trainer's TrainJob CRD as releases before v2.2
had it ("v2-old", without `runtimePatches`); hubflow's runtime (the chart's) and the stock one.
`bare_ns` (function): a namespace of it with the chart's hub RBAC and the hub's kubeconfig.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import requests
import yaml

from hubflow.hub.services import ACCESS_SCOPE, SUBMIT_SCOPE
from hubflow.hub.services import JOBS_SERVICE as SERVICE_NAME
from hubflow.hub.settings import DEFAULT_PROFILES
from hubflow.launcher.client import JobsClient
from hubflow.profiles.source import profile_source
from tests.helpers.hubclient import free_port
from tests.kube.cluster.controlplane import ControlPlane
from tests.kube.cluster.fixtures import Namespace, RealCluster, running_control_plane
from tests.kube.cluster.hubaccount import hub_kubeconfig, render_runtime
from tests.kube.cluster.kubeflow import GOMODCACHE, Kubeflow, components

Obj = dict[str, Any]
#: The Kubeflow API group/version each CRD set serves.
GROUPS = {"v1": "kubeflow.org/v1", "v2": "trainer.kubeflow.org/v1alpha1"}
GROUPS["v2-old"] = GROUPS["v2"]


class BareCluster(RealCluster):
    """A real control plane without Kubeflow, serving the Kubeflow CRDs a test asks for."""

    def __init__(self, cp: ControlPlane) -> None:
        super().__init__(cp)
        self._crds: dict[str, dict[str, Obj]] = {}
        self._serving: dict[str, str] = {}  # CRD name -> the set it came from

    def crds(self, which: str) -> dict[str, Obj]:
        """CRD name -> CRD of the set `which` ("v1", "v2" or "v2-old")."""
        if which not in self._crds:
            name = "training-operator" if which == "v1" else "trainer"
            component = next(c for c in components() if c.name == name)
            docs = Kubeflow(self.cp).render(component)
            found = {
                d["metadata"]["name"]: d for d in docs if d["kind"] == "CustomResourceDefinition"
            }
            if which == "v2-old":
                found = copy.deepcopy(found)
                for version in found["trainjobs.trainer.kubeflow.org"]["spec"]["versions"]:
                    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
                    del spec["properties"]["runtimePatches"]
            self._crds[which] = found
        return self._crds[which]

    def serve(self, crd_sets: list[str], runtimes: list[str]) -> None:
        """Serve exactly the CRDs of `crd_sets` and the ClusterTrainingRuntimes `runtimes`
        ("hubflow": the chart's; "stock": Trainer's torch-distributed)."""
        wanted = {name: which for which in crd_sets for name in self.crds(which)}
        stale = [n for n, which in self._serving.items() if wanted.get(n) != which]
        if stale:
            self.cp.kubectl("delete", "crd", "--wait=true", *stale)
            for name in stale:
                del self._serving[name]
        new = [self.crds(w)[n] for n, w in wanted.items() if n not in self._serving]
        if new:
            self.cp.kubectl("create", "-f", "-", input=_list(new))
            self.cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                            *(f"crd/{d['metadata']['name']}" for d in new))  # fmt: skip
            self._serving.update((n, wanted[n]) for n in (d["metadata"]["name"] for d in new))
        groups = {GROUPS[w] for w in crd_sets}
        self.wait_for(lambda: self._served_groups() == groups, timeout=60)
        if any(w.startswith("v2") for w in crd_sets):
            self.cp.kubectl("delete", "clustertrainingruntimes", "--all", "--wait=true")
            docs = [doc for r in runtimes for doc in _runtime(r)]
            if docs:
                self.cp.kubectl("create", "-f", "-", input=_list(docs))

    def _served_groups(self) -> set[str]:
        _, apis = self.request("GET", "/apis")
        served = {v["groupVersion"] for g in apis["groups"] for v in g["versions"]}
        return served & set(GROUPS.values())


def _list(items: list[Obj]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def _runtime(which: str) -> list[Obj]:
    if which == "hubflow":
        return render_runtime()
    trainer = next(c for c in components() if c.name == "trainer")
    path = GOMODCACHE / trainer.module / "manifests/base/runtimes/torch_distributed.yaml"
    return [yaml.safe_load(path.read_text())]


@pytest.fixture(scope="session")
def bare_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareCluster]:
    with running_control_plane(tmp_path_factory, "bare-cluster", kubeflow=False) as cp:
        yield BareCluster(cp)


_numbers = itertools.count(1)


@pytest.fixture
def bare_ns(bare_cluster: BareCluster, tmp_path: Path) -> Iterator[Namespace]:
    name = f"b{os.getpid() % 10000}-{next(_numbers)}"
    bare_cluster.cp.kubectl("create", "namespace", name)
    kubeconfig = hub_kubeconfig(bare_cluster.cp, tmp_path / "hub.kubeconfig", namespace=name)
    yield Namespace(name, kubeconfig, bare_cluster)
    bare_cluster.cp.kubectl("delete", "namespace", name, "--wait=false", check=False)


# -- the jobs service against the cluster with the real Kubeflow controllers ----------------------

PREFIX = f"/services/{SERVICE_NAME}/"
USERS = ("alice", "bob", "carol")


class HubStandIn:
    """GET /hub/api/user (who a token belongs to), GET /hub/api/users/NAME (the server's
    state as KubeSpawner keeps it: pod, namespace, workspace PVC, hubflow's resolved profile)
    and GET /hub/api/users?state=active (every user's, for the GPU quotas). Users' servers are in
    `namespace` (set it before add_user)."""

    def __init__(self) -> None:
        self.namespace = ""
        self.service_token = secrets.token_hex(16)
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                token = self.headers.get("Authorization", "").partition(" ")[2]
                if self.path.startswith("/hub/api/user?") or self.path == "/hub/api/user":
                    name = hub.tokens.get(token)
                    body = hub.user_model(name) if name else None
                elif self.path.startswith("/hub/api/users?") and token == hub.service_token:
                    body = list(hub.users.values())  # users with active servers, one page
                elif self.path.startswith("/hub/api/users/") and token == hub.service_token:
                    body = hub.users.get(self.path.rsplit("/", 1)[1])
                else:
                    body = None
                self.send_response(200 if body else 403)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body or {"message": "no"}).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def user_model(self, name: str) -> dict[str, Any]:
        model = dict(self.users[name])
        model["scopes"] = [SUBMIT_SCOPE, ACCESS_SCOPE, f"read:users!user={name}"]
        return model

    def add_user(
        self,
        name: str,
        profile: str = "small-cpu",
        groups: tuple[str, ...] = (),
        admin: bool = False,
        kubespawner_override: dict[str, Any] | None = None,
    ) -> str:
        """A user whose default server runs `profile` (with a z2jh `kubespawner_override` as a
        profile may carry); returns a token of theirs."""
        assert self.namespace, "set the stand-in's namespace first"
        catalog = profile_source([str(DEFAULT_PROFILES)]).current()
        resolved = catalog.resolve({"profile": profile}, list(groups), is_admin=admin).to_dict()
        resolved["kubespawner_override"] = kubespawner_override or {}
        state = {
            "pod_name": f"jupyter-{name}",
            "namespace": self.namespace,
            "pvc_name": f"workspace-{name}",
            "hubflow": {"profile": resolved},
        }
        self.users[name] = {
            "kind": "user",
            "name": name,
            "admin": admin,
            "groups": list(groups),
            "servers": {"": {"name": "", "ready": True, "state": state}},
        }
        token = secrets.token_hex(16)
        self.tokens[token] = name
        return token

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class JobsService:
    """`python -m hubflow.jobs` in Kubernetes mode, as the hub's account of namespace `ns`."""

    def __init__(self, data_dir: Path, ns: Namespace, hub: HubStandIn, kubeflow_api: str):
        self.data_dir, self.port = data_dir, free_port()
        self.url = f"http://127.0.0.1:{self.port}{PREFIX}"
        command = [sys.executable, "-m", "hubflow.jobs"]
        env = {
            **os.environ,
            "HUBFLOW_DATA_DIR": str(data_dir),
            "HUBFLOW_JOBS_PORT": str(self.port),
            "HUBFLOW_PROFILES": str(DEFAULT_PROFILES),
            "HUBFLOW_MODE": "kubernetes",
            "HUBFLOW_NAMESPACE": ns.name,
            "HUBFLOW_KUBEFLOW_API": kubeflow_api,
            "KUBECONFIG": str(ns.hub_kubeconfig),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "JUPYTERHUB_API_URL": hub.url,
            "JUPYTERHUB_API_TOKEN": hub.service_token,
            "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
            "JUPYTERHUB_SERVICE_NAME": SERVICE_NAME,
        }
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(data_dir / "service.log", "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(self.url + "api/jobs", timeout=5)
                break
            except requests.ConnectionError:
                assert self.proc.poll() is None, self.log_text()
                assert time.monotonic() < deadline, self.log_text()
                time.sleep(0.2)

    def log_text(self) -> str:
        return (self.data_dir / "service.log").read_text(errors="replace")

    def client(self, token: str) -> JobsClient:
        return JobsClient(self.url, token)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def stand_in() -> Iterator[HubStandIn]:
    hub = HubStandIn()
    yield hub
    hub.stop()


@pytest.fixture
def jobs_ns(kube_ns: Namespace, stand_in: HubStandIn) -> Namespace:
    """`kube_ns` with the users' workspace claims (bound by the node agent's provisioner); the
    stand-in hub's users have their servers there."""
    core = kubernetes.client.CoreV1Api(kube_ns.cluster.client(kube_ns.hub_kubeconfig))
    for user in USERS:
        claim = {
            "metadata": {"name": f"workspace-{user}"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        core.create_namespaced_persistent_volume_claim(kube_ns.name, claim)
    stand_in.namespace = kube_ns.name
    return kube_ns


@pytest.fixture
def jobs_service(
    tmp_path: Path, jobs_ns: Namespace, stand_in: HubStandIn
) -> Iterator[Callable[..., JobsService]]:
    """jobs_service(kubeflow_api, data_dir=None, ns=None) -> a running jobs service in
    Kubernetes mode in `ns` (default: jobs_ns)."""
    started: list[JobsService] = []

    def start(
        kubeflow_api: str = "auto", data_dir: Path | None = None, ns: Namespace | None = None
    ) -> JobsService:
        data_dir = data_dir or tmp_path / f"jobs{len(started)}"
        service = JobsService(data_dir, ns or jobs_ns, stand_in, kubeflow_api)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
