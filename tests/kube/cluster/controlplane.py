"""A real Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler built from their Go modules (build.sh), the node agent (node_agent.py, the one
played part), and the real Kubeflow controllers with their webhooks (kubeflow.py).

By hand:  python -m tests.kube.cluster up     (prints the admin kubeconfig path; `make cluster`)
          python -m tests.kube.cluster down   (`make cluster-down`)
In tests: the session fixture `real_cluster` (tests/kube/cluster/fixtures.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.kube.cluster.netns import Network
from tests.kube.cluster.pki import PKI

HERE = Path(__file__).parent
REPO = HERE.parents[2]
#: Where the cluster of `make cluster` keeps its state (certs, kubeconfigs, etcd data, logs).
DEFAULT_STATE = Path(os.environ.get("HUBFLOW_CLUSTER_DIR", Path.home() / ".cache/hubflow/cluster"))

#: The Nodes the node agent registers by default: name, cpu, memory, GPUs, labels, taints (and
#: optionally "pods", the pod capacity, 110 when absent).
NODES: list[dict[str, Any]] = [
    {"name": "cpu-1", "cpu": "8", "memory": "32Gi", "gpus": 0, "labels": {}, "taints": []},
    {"name": "cpu-2", "cpu": "8", "memory": "32Gi", "gpus": 0, "labels": {}, "taints": []},
    {
        "name": "gpu-a100-1",
        "cpu": "16",
        "memory": "64Gi",
        "gpus": 4,
        "labels": {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
            "nvidia.com/gpu.count": "4",
        },
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    },
]


def build_binaries() -> Path:
    """The binary directory (built once into the cache outside the clone by build.sh)."""
    out = subprocess.run(
        [str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def _die_with_parent() -> None:
    """In a child before exec: SIGKILL it when the process that started it dies (no leaks)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ControlPlane:
    """One cluster, numbered `index` (its bridge, address range and etcd port follow from it)."""

    def __init__(
        self, state: Path, bins: Path | None = None, index: int | None = None,
        nodes: list[dict[str, Any]] | None = None, apiserver_args: list[str] | None = None,
    ) -> None:  # fmt: skip
        """`nodes` replaces NODES; `apiserver_args` are extra kube-apiserver flags (an audit
        log, for one)."""
        self.state = state
        self.nodes = nodes if nodes is not None else NODES
        self.apiserver_args = apiserver_args or []
        self.bins = bins or build_binaries()
        self.index = index if index is not None else _free_index()
        self.net = Network(self.index)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()
        self.logs = state / "logs"
        self.api_url = f"https://{self.net.host_ip}:6443"
        self.etcd_url = f"http://127.0.0.1:{23790 + 2 * self.index}"

    # -- paths -------------------------------------------------------------------------------

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.state / "pki"

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Run our kubectl as the admin; its stdout."""
        done = subprocess.run(
            [str(self.bins / "kubectl"), "--kubeconfig", str(self.admin_kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
        )
        if check and done.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def apply(self, docs: list[dict[str, Any]]) -> None:
        """Apply objects as the admin (server-side, the tests' field manager)."""
        text = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
        self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=hubflow-test",
            "-f",
            "-",
            input=text,
        )

    # -- start and stop ----------------------------------------------------------------------

    def start(self, kubeflow: bool = True) -> ControlPlane:
        started = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        (self.state / "index").write_text(str(self.index))
        self.net.up()
        try:
            self._pki()
            self._etcd()
            self._apiserver()
            self._controllers()
            self._node_agent()
            if kubeflow:
                from tests.kube.cluster.kubeflow import Kubeflow

                Kubeflow(self).install()
        except BaseException:
            self.stop()
            raise
        (self.state / "started").write_text(f"{time.monotonic() - started:.1f}\n")
        return self

    def stop(self) -> None:
        self.stopping.set()
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.procs.clear()
        self.net.down()

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, netns: str = ""
    ) -> subprocess.Popen[bytes]:
        """Start a component with its log in logs/<name>.log (inside `netns` if given)."""
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_PROXY": "*", "no_proxy": "*", **(env or {})},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def wait_for(self, what: str, check: Any, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(
                        f"{name} exited ({proc.returncode}) waiting for {what}:\n{tail}"
                    )
            with contextlib.suppress(Exception):
                if check():
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.3)

    # -- the parts ---------------------------------------------------------------------------

    def _pki(self) -> None:
        pki = PKI(self.pki_dir)
        service_ip = self.net.service_cidr.split("/")[0].rsplit(".", 1)[0] + ".1"
        pki.issue(
            "apiserver",
            "kube-apiserver",
            dns=(
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
            ),  # fmt: skip
            ips=(self.net.host_ip, "127.0.0.1", service_ip),
            server=True,
        )
        pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",))
        pki.issue(
            "node-agent-serving",
            "node-agent",
            dns=("localhost",),
            ips=(self.net.host_ip,),
            server=True,
        )
        identities = {
            "admin": ("kubernetes-admin", ("system:masters",)),
            "controller-manager": ("system:kube-controller-manager", ()),
            "scheduler": ("system:kube-scheduler", ()),
            "node-agent": ("system:node-agent", ("system:masters",)),
        }
        for name, (cn, orgs) in identities.items():
            crt, key = pki.issue(name, cn, orgs)
            path = self.admin_kubeconfig if name == "admin" else self.state / f"{name}.kubeconfig"
            path.write_text(self._kubeconfig(name, client=(crt, key)))

    def _kubeconfig(
        self, user: str, client: tuple[Path, Path] | None = None, token: str | None = None,
        namespace: str = "default",
    ) -> str:  # fmt: skip
        creds = (
            {"client-certificate": str(client[0]), "client-key": str(client[1])}
            if client
            else {"token": token}
        )
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "hubflow-test",
                        "cluster": {
                            "server": self.api_url,
                            "certificate-authority": str(self.pki_dir / "ca.crt"),
                        },
                    }
                ],
                "users": [{"name": user, "user": creds}],
                "contexts": [
                    {
                        "name": user,
                        "context": {
                            "cluster": "hubflow-test",
                            "user": user,
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": user,
            },
            indent=1,
        )

    def token_kubeconfig(
        self, path: Path, namespace: str, service_account: str, hours: int = 12
    ) -> Path:
        """A kubeconfig that talks as `service_account`, with a token from the TokenRequest API."""
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": hours * 3600},
        }
        out = self.kubectl(
            "create", "--raw",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            "-f", "-", input=json.dumps(request),
        )  # fmt: skip
        token = json.loads(out)["status"]["token"]
        path.write_text(self._kubeconfig(service_account, token=token, namespace=namespace))
        path.chmod(0o600)
        return path

    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        context.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return context

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.api_url + path, context=self._ssl(), timeout=10) as r:
            body = r.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body.decode()

    def _etcd(self) -> None:
        port = 23790 + 2 * self.index
        self.spawn(
            "etcd",
            [
                str(self.bins / "etcd"), "--name", "default", "--data-dir", str(self.state / "etcd"),
                "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                "--listen-peer-urls", f"http://127.0.0.1:{port + 1}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{port + 1}",
                "--initial-cluster", f"default=http://127.0.0.1:{port + 1}",
                "--unsafe-no-fsync", "--auto-compaction-retention=1", "--quota-backend-bytes=2147483648",
                "--listen-metrics-urls", "",
            ],
        )  # fmt: skip

        def healthy() -> bool:
            with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as r:
                return b'"true"' in r.read()

        self.wait_for("etcd", healthy, 60)

    def _apiserver(self) -> None:
        p = self.pki_dir
        self.spawn(
            "kube-apiserver",
            [
                str(self.bins / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={self.net.host_ip}", "--secure-port=6443",
                f"--advertise-address={self.net.host_ip}",
                f"--tls-cert-file={p}/apiserver.crt", f"--tls-private-key-file={p}/apiserver.key",
                f"--client-ca-file={p}/ca.crt",
                "--authorization-mode=Node,RBAC",
                # The default admission plugins (PodSecurity, ServiceAccount, LimitRanger, ResourceQuota,
                # Priority, the webhooks, ValidatingAdmissionPolicy, ...) plus the one that makes
                # blockOwnerDeletion need `update` on the owner's finalizers. NodeRestriction is off.
                "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
                "--allow-privileged=true",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p}/sa.pub",
                f"--service-account-signing-key-file={p}/sa.key",
                f"--service-cluster-ip-range={self.net.service_cidr}",
                f"--kubelet-client-certificate={p}/apiserver-kubelet-client.crt",
                f"--kubelet-client-key={p}/apiserver-kubelet-client.key",
                f"--kubelet-certificate-authority={p}/ca.crt",
                "--kubelet-preferred-address-types=InternalIP",
                "--profiling=false", "--event-ttl=30m",
                *self.apiserver_args,
            ],
        )  # fmt: skip
        self.wait_for("kube-apiserver /readyz", lambda: self.get("/readyz") == "ok", 120)

    def _controllers(self) -> None:
        p = self.pki_dir
        self.spawn(
            "kube-controller-manager",
            [
                str(self.bins / "kube-controller-manager"),
                f"--kubeconfig={self.state}/controller-manager.kubeconfig",
                f"--bind-address={self.net.host_ip}",
                f"--root-ca-file={p}/ca.crt",
                f"--service-account-private-key-file={p}/sa.key",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={p}/ca.crt", f"--cluster-signing-key-file={p}/ca.key",
                f"--service-cluster-ip-range={self.net.service_cidr}",
                "--leader-elect=false",
                "--controllers=*,-bootstrap-signer-controller,-token-cleaner-controller,"
                "-horizontal-pod-autoscaler-controller,-cronjob-controller",
                "--profiling=false",
            ],
        )  # fmt: skip
        self.spawn(
            "kube-scheduler",
            [
                str(self.bins / "kube-scheduler"),
                f"--kubeconfig={self.state}/scheduler.kubeconfig",
                f"--bind-address={self.net.host_ip}",
                "--leader-elect=false", "--profiling=false",
            ],
        )  # fmt: skip
        self.wait_for(
            "the default ServiceAccount",
            lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default"),
            120,
        )

    def _node_agent(self) -> None:
        config = {
            "kubeconfig": str(self.state / "node-agent.kubeconfig"),
            "ca": str(self.pki_dir / "ca.crt"),
            "serving_cert": str(self.pki_dir / "node-agent-serving.crt"),
            "serving_key": str(self.pki_dir / "node-agent-serving.key"),
            "api_url": self.api_url,
            "host_ip": self.net.host_ip,
            "index": self.index,
            "state": str(self.state / "pods"),
            "nodes": self.nodes,
            "python": sys.executable,
        }
        (self.state / "node-agent.json").write_text(json.dumps(config, indent=1))
        self.spawn(
            "node-agent",
            [
                sys.executable,
                "-m",
                "tests.kube.cluster.node_agent",
                str(self.state / "node-agent.json"),
            ],
            env={"PYTHONPATH": str(REPO)},
        )

        def ready() -> bool:
            nodes = self.get("/api/v1/nodes")["items"]
            ok = [
                n for n in nodes
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
                and not any(t["key"] == "node.kubernetes.io/not-ready" for t in n["spec"].get("taints", []))
            ]  # fmt: skip
            return len(ok) == len(self.nodes)

        self.wait_for("the nodes to be Ready", ready, 120)
        # The default StorageClass; the node agent provisions its claims as hostPath volumes.
        storage = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "standard",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "hubflow.test/local",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(storage))


def _free_index() -> int:
    """The first cluster number not held by a live process (a dead cluster's is reclaimed)."""
    for index in range(1, 40):
        owner = Path(f"/run/hubflow-cluster-{index}.pid")
        alive = False
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(owner.read_text()), 0)
            alive = True
        if alive or (Path(f"/sys/class/net/hfbr{index}").exists() and not owner.exists()):
            continue
        owner.write_text(str(os.getpid()))
        return index
    raise RuntimeError("no free cluster number (hfbr1..hfbr39 all in use)")
