"""The real Kubeflow controllers on the test cluster: training-operator, Trainer, JobSet and Kueue,
each built at its pinned release (build.sh), installed from that release's own manifests (CRDs,
RBAC, webhook configurations, rendered by kustomize from the module source in the Go module cache),
and run as a local process in its own network namespace with its own TMPDIR (so its cert-controller
keeps its serving certificate apart from the others') and its default ports.

What a real cluster has and this one does differently, and why:
- no controller Deployments (the node agent does not run container images): each controller is a
  process of the built binary, started with the Deployment's arguments;
- each webhook Service becomes `type: ExternalName` naming the controller's address, and each
  webhook's clientConfig.service.port its webhook port (there is no kube-proxy; kwok does the same).
  The API server still calls it by the Service (TLS name `<svc>.<ns>.svc`, the CA bundle that the
  controller's own cert-controller injects);
- Kueue's visibility APIService is left out (no aggregated server behind it);
- leader election is off (one replica each).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from tests.kube.cluster.controlplane import ControlPlane

GOMODCACHE = Path(
    os.environ.get("GOMODCACHE")
    or subprocess.run(
        ["sh", "-c", "PATH=$PATH:/usr/local/go/bin go env GOMODCACHE"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    or Path.home() / "go/pkg/mod"
)
HERE = Path(__file__).parent


def versions() -> dict[str, str]:
    text = (HERE / "build.sh").read_text()
    found = {}
    for line in text.splitlines():
        if line.split("=")[0] in ("K8S_VERSION", "TRAINING_OPERATOR_VERSION", "TRAINER_VERSION",
                                  "JOBSET_VERSION", "KUEUE_VERSION"):  # fmt: skip
            key, value = line.split("=", 1)
            found[key] = value.split()[0]
    return found


class Component:
    """One controller: where its manifests are, what to render, its webhook service and args."""

    def __init__(
        self, name: str, module: str, kustomize: list[str], namespace: str, service: str,
        binary: str, args: list[str], config: str = "", env: dict[str, str] | None = None,
        secret: str = "",
    ) -> None:  # fmt: skip
        self.name, self.module, self.kustomize = name, module, kustomize
        self.namespace, self.service, self.binary = namespace, service, binary
        self.args, self.config, self.env = args, config, env or {}
        self.secret = secret
        self.ip = ""


def components() -> list[Component]:
    v = versions()
    return [
        Component(
            "jobset", f"sigs.k8s.io/jobset@{v['JOBSET_VERSION']}", ["config/default"],
            "jobset-system", "jobset-webhook-service", "jobset",
            ["--zap-log-level=2"], config="jobset-manager-config", secret="jobset-webhook-server-cert",
        ),
        Component(
            "training-operator", f"github.com/kubeflow/training-operator@{v['TRAINING_OPERATOR_VERSION']}",
            ["manifests/overlays/standalone"], "kubeflow", "training-operator", "training-operator",
            ["--enable-scheme=pytorchjob", "--enable-scheme=tfjob"],
            env={"KUBEFLOW_NAMESPACE": "", "MY_POD_NAMESPACE": "kubeflow", "MY_POD_NAME": "training-operator"},
            secret="training-operator-webhook-cert",
        ),
        Component(
            "trainer", f"github.com/kubeflow/trainer/v2@{v['TRAINER_VERSION']}",
            ["manifests/base/crds", "manifests/base/manager", "manifests/base/rbac", "manifests/base/webhook"],
            "kubeflow-system", "kubeflow-trainer-controller-manager", "trainer-controller-manager",
            ["--zap-log-level=2"], config="kubeflow-trainer-config", secret="kubeflow-trainer-webhook-cert",
        ),
        Component(
            "kueue", f"sigs.k8s.io/kueue@{v['KUEUE_VERSION']}", ["config/default"],
            "kueue-system", "kueue-webhook-service", "kueue",
            # Its visibility API is an aggregated server (in-cluster delegated authentication);
            # the APIService is not installed, so the server is off.
            ["--zap-log-level=2", "--feature-gates=VisibilityOnDemand=false"], config="kueue-manager-config", secret="kueue-webhook-server-cert",
        ),
    ]  # fmt: skip


#: The Kueue frameworks hubflow's jobs use (the stock list also names Ray, AppWrapper, LWS, pods...).
KUEUE_FRAMEWORKS = [
    "batch/job", "jobset.x-k8s.io/jobset", "kubeflow.org/pytorchjob", "kubeflow.org/tfjob",
    "trainer.kubeflow.org/trainjob",
]  # fmt: skip
#: Where training-operator, Trainer and JobSet read their webhook certificates (hard-coded).
SHARED_CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")
#: The webhook port every controller serves on (its own address; no clash).
WEBHOOK_PORT = 9443


class Kubeflow:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.dir = cp.state / "kubeflow"

    def render(self, c: Component) -> list[dict[str, Any]]:
        """The release's manifests, rendered by kustomize from a copy of the module source (the
        module cache path holds an '@', which kustomize would take for a remote URL)."""
        cached = self.cp.bins / "manifests" / f"{c.name}.json"
        if cached.exists():
            return list(json.loads(cached.read_text()))
        source = GOMODCACHE / c.module
        if not source.is_dir():
            subprocess.run(
                ["sh", "-c", f"PATH=$PATH:/usr/local/go/bin go mod download {c.module}"],
                check=True, cwd=tempfile.gettempdir(),
            )  # fmt: skip
        copy = self.dir / c.name / "src"
        shutil.rmtree(copy, ignore_errors=True)
        top = {k.split("/")[0] for k in c.kustomize}
        for t in top:
            shutil.copytree(source / t, copy / t)
        subprocess.run(["chmod", "-R", "u+w", str(copy)], check=True)
        root = self.dir / c.name / "render"
        root.mkdir(parents=True, exist_ok=True)
        (root / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {"namespace": c.namespace, "resources": [f"../src/{k}" for k in c.kustomize]}
            )
        )
        out = self.cp.kubectl("kustomize", str(root))
        docs = [
            d for d in yaml.load_all(out, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if d
        ]
        # Kept beside the binaries of the same pins: the next start renders nothing.
        cached.parent.mkdir(exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(docs))
        tmp.rename(cached)
        return docs

    def install(self, only: set[str] | None = None) -> None:
        started = time.monotonic()
        cp = self.cp
        self.dir.mkdir(parents=True, exist_ok=True)
        comps = [c for c in components() if only is None or c.name in only]
        docs: list[dict[str, Any]] = []
        configs: dict[str, str] = {}
        for number, c in enumerate(comps):
            c.ip = cp.net.infra_ip(number)
            for doc in self.render(c):
                kind, meta = doc["kind"], doc["metadata"]
                if kind in ("Deployment", "APIService", "Namespace"):
                    continue
                if kind == "ConfigMap" and meta["name"] == c.config:
                    configs[c.name] = doc["data"]["controller_manager_config.yaml"]
                    continue
                if kind == "Service":
                    if meta["name"] != c.service:
                        continue
                    doc["spec"] = {
                        "type": "ExternalName",
                        "externalName": c.ip,
                        "ports": [{"name": "webhook", "port": WEBHOOK_PORT, "protocol": "TCP"}],
                    }
                if kind == "CustomResourceDefinition":
                    service = (
                        (doc["spec"].get("conversion") or {})
                        .get("webhook", {})
                        .get("clientConfig", {})
                        .get("service")
                    )
                    if service:  # a conversion webhook (Kueue's v1beta1 <-> v1beta2)
                        service["port"] = WEBHOOK_PORT
                if kind.endswith("WebhookConfiguration"):
                    for hook in doc["webhooks"]:
                        hook["clientConfig"]["service"]["port"] = WEBHOOK_PORT
                docs.append(doc)
        namespaces = sorted({c.namespace for c in comps})
        ns_docs = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces
        ]
        secrets = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": c.secret, "namespace": c.namespace},
            }
            for c in comps
        ]
        self.cp.apply(ns_docs)
        crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
        # `create`, not server-side apply: the CRDs are large and the cluster is new.
        cp.kubectl(
            "create",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": crds}),
        )
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        named = {
            (d["metadata"].get("namespace"), d["metadata"]["name"])
            for d in docs
            if d["kind"] == "Secret"
        }
        rest = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
        self.cp.apply(
            rest
            + [
                x
                for x in secrets
                if (x["metadata"]["namespace"], x["metadata"]["name"]) not in named
            ]
        )
        threading.Thread(target=self.sync_certs, args=(comps,), daemon=True).start()
        for c in comps:
            self.start(c, configs.get(c.name))
        for c in comps:
            self.wait_ready(c)
        if any(c.name == "kueue" for c in comps):
            self.kueue_setup()
        if not any(c.name == "trainer" for c in comps):
            return
        # The stock torch runtime, as Trainer's `runtimes` overlay installs it.
        trainer = next(c for c in comps if c.name == "trainer")
        runtime = GOMODCACHE / trainer.module / "manifests/base/runtimes/torch_distributed.yaml"
        self.apply_retrying([yaml.safe_load(runtime.read_text())])
        (self.dir / "installed").write_text(f"{time.monotonic() - started:.1f}\n")

    def start(self, c: Component, config_text: str | None) -> None:
        home = self.dir / c.name
        tmp = home / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        args = list(c.args)
        if config_text is not None:
            config = yaml.safe_load(config_text)
            config.setdefault("leaderElection", {})["leaderElect"] = False
            if c.name == "kueue":
                config["integrations"] = {"frameworks": KUEUE_FRAMEWORKS}
            (home / "config.yaml").write_text(yaml.safe_dump(config))
            args.append(f"--config={home / 'config.yaml'}")
        netns = self.cp.net.add(f"c-{c.name}", c.ip)
        certs = home / "certs"
        certs.mkdir(exist_ok=True)
        SHARED_CERT_DIR.mkdir(parents=True, exist_ok=True)
        # Its own mount namespace, where the hard-coded cert directory is its own (the kubelet
        # would mount the cert Secret there; sync_certs plays that part).
        wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f'mount --bind "$0" {SHARED_CERT_DIR} && exec "$@"', str(certs)]  # fmt: skip
        self.cp.spawn(
            c.name, [*wrap, str(self.cp.bins / c.binary), *args],
            env={"KUBECONFIG": str(self.cp.admin_kubeconfig), "TMPDIR": "/tmp", "HOME": str(home), **c.env},
            netns=netns,
        )  # fmt: skip

    def sync_certs(self, comps: list[Component]) -> None:
        """The kubelet's part for the controllers' cert Secret volumes: each Secret's keys as
        files in the controller's cert directory, rewritten when the Secret changes."""
        seen: dict[str, str] = {}
        while not self.cp.stopping.is_set():
            for c in comps:
                try:
                    secret = self.cp.get(f"/api/v1/namespaces/{c.namespace}/secrets/{c.secret}")
                except Exception:  # noqa: BLE001 (retried)
                    continue
                version = secret["metadata"]["resourceVersion"]
                if seen.get(c.name) == version:
                    continue
                certs = self.dir / c.name / "certs"
                for key, value in (secret.get("data") or {}).items():
                    tmp = certs / f".{key}.tmp"
                    tmp.write_bytes(base64.b64decode(value))
                    tmp.rename(certs / key)
                seen[c.name] = version
            self.cp.stopping.wait(0.5)

    def wait_ready(self, c: Component) -> None:
        def ready() -> bool:
            with urllib.request.urlopen(f"http://{c.ip}:8081/readyz", timeout=2) as r:
                if r.status != 200:
                    return False
            # the webhook configurations carry the CA bundle the controller injected
            for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
                for conf in self.cp.get(f"/apis/admissionregistration.k8s.io/v1/{kind}")["items"]:
                    for hook in conf.get("webhooks", []):
                        svc = hook["clientConfig"].get("service") or {}
                        if svc.get("name") == c.service and not hook["clientConfig"].get(
                            "caBundle"
                        ):
                            return False
            return True

        self.cp.wait_for(f"{c.name} to be ready", ready, 180)

    def kueue_setup(self) -> None:
        """One ResourceFlavor, ClusterQueue and LocalQueue (namespace default), and the
        WorkloadPriorityClasses hubflow's profiles may name."""
        docs = [
            {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "ResourceFlavor", "metadata": {"name": "default-flavor"}},
            {
                "apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "ClusterQueue", "metadata": {"name": "hubflow"},
                "spec": {
                    "namespaceSelector": {},
                    "resourceGroups": [{
                        "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                        "flavors": [{"name": "default-flavor", "resources": [
                            {"name": "cpu", "nominalQuota": "32"}, {"name": "memory", "nominalQuota": "128Gi"},
                            {"name": "nvidia.com/gpu", "nominalQuota": "4"}]}],
                    }],
                },
            },
            {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "LocalQueue",
             "metadata": {"name": "hubflow", "namespace": "default"}, "spec": {"clusterQueue": "hubflow"}},
            {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "WorkloadPriorityClass",
             "metadata": {"name": "hubflow-high"}, "value": 1000, "description": "hubflow tests: high"},
        ]  # fmt: skip
        self.apply_retrying(docs)

    def apply_retrying(self, docs: list[dict[str, Any]], timeout: float = 60) -> None:
        """Apply, retrying while a webhook that just started is not answering yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.cp.apply(docs)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
