"""The hub's identity on the test cluster: the chart's ServiceAccount, Role(s) and bindings
(rendered by helm from helm/hubflow, applied by the admin), and a kubeconfig with a token from the
TokenRequest API. The hub under test talks with that, never as an admin."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from tests.kube.cluster.controlplane import ControlPlane

REPO = Path(__file__).parents[3]
CHART = REPO / "helm" / "hubflow"


def helm() -> str:
    found = REPO / ".venv" / "bin" / "helm"
    return str(found) if found.exists() else (shutil.which("helm") or "helm")


def render_rbac(
    namespace: str, release: str = "hubflow", values: list[str] | None = None
) -> list[dict[str, Any]]:
    argv = [helm(), "template", release, str(CHART), "--namespace", namespace,
            "--show-only", "templates/hub-rbac.yaml", "--skip-schema-validation", *(values or [])]  # fmt: skip
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def hub_kubeconfig(
    cp: ControlPlane, path: Path, namespace: str = "default", release: str = "hubflow"
) -> Path:
    """Install the chart's RBAC into `namespace` and write a kubeconfig for its ServiceAccount."""
    docs = render_rbac(namespace, release)
    for doc in docs:
        doc["metadata"].setdefault("namespace", namespace)
    cp.apply([d for d in docs if d["kind"] != "Namespace"])
    account = next(d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount")
    return cp.token_kubeconfig(path, namespace, account)


_RUNTIME_FILE: Path | None = None


def render_runtime() -> list[dict[str, Any]]:
    """The chart's ClusterTrainingRuntime (trainer-runtime.yaml), as on a cluster serving Trainer."""
    argv = [helm(), "template", "hubflow", str(CHART), "--api-versions", "trainer.kubeflow.org/v1alpha1",
            "--show-only", "templates/trainer-runtime.yaml", "--skip-schema-validation"]  # fmt: skip
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def runtime_file() -> Path:
    """The chart's ClusterTrainingRuntime rendered into a file (once per process), for the
    simulator's preload."""
    global _RUNTIME_FILE
    if _RUNTIME_FILE is None or not _RUNTIME_FILE.exists():
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="hubflow-runtime-"))
        _RUNTIME_FILE = folder / "hubflow-torch-distributed.yaml"
        _RUNTIME_FILE.write_text(yaml.safe_dump_all(render_runtime()))
    return _RUNTIME_FILE


def install_runtime(cp: ControlPlane) -> None:
    """Install the chart's ClusterTrainingRuntime (what `helm install` does on a Trainer cluster)."""
    items = render_runtime()
    cp.kubectl("apply", "--server-side", "--field-manager=hubflow-test", "-f", "-",
               input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))  # fmt: skip
