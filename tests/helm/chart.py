"""Running the real `helm` on the chart: render it to objects, lint it, catch what it refuses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "hubflow"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
NAMESPACE = "hubflow"
RELEASE = "hf"
#: The Kubernetes version rendered objects are validated against (kubernetes-validate, strict).
K8S_VERSION = "1.30"


def helm_binary() -> str:
    """helm as `make setup` installs it next to this Python, else from PATH."""
    beside = Path(sys.executable).parent / "helm"
    found = str(beside) if beside.exists() else shutil.which("helm")
    if not found:
        raise RuntimeError("helm not found: `make setup` installs it into .venv/bin")
    return found


def _run(args: list[str], values: Mapping[str, Any] | None, files: Iterable[Path]) -> str:
    """Run helm with the chart, values files and (last, so it wins) a values mapping."""
    command = [helm_binary(), *args, str(CHART)]
    for path in files:
        command += ["--values", str(path)]
    if values is not None:
        command += ["--values", "-"]
    result = subprocess.run(
        command,
        # No cluster is ever asked (a user's kubeconfig is not read).
        env={**os.environ, "KUBECONFIG": os.devnull},
        input=yaml.safe_dump(dict(values)) if values is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise HelmError(result.stderr + result.stdout)
    return result.stdout


class HelmError(Exception):
    """helm refused the chart or the values; the message is what helm printed."""


def render(
    values: Mapping[str, Any] | None = None,
    files: Iterable[Path] = (),
    namespace: str = NAMESPACE,
) -> list[dict[str, Any]]:
    """The objects `helm template` renders, in order."""
    out = _run(["template", RELEASE, "--namespace", namespace], values, files)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def notes(values: Mapping[str, Any] | None = None, files: Iterable[Path] = ()) -> str:
    """What `helm install` prints for the release (a client-side dry run: no cluster)."""
    out = _run(["install", RELEASE, "--namespace", NAMESPACE, "--dry-run=client"], values, files)
    return out[out.index("NOTES:") :]


def lint(values: Mapping[str, Any] | None = None, files: Iterable[Path] = ()) -> str:
    """`helm lint --strict` output; raises HelmError when the chart fails."""
    return _run(["lint", "--strict"], values, files)


def refusal(values: Mapping[str, Any]) -> str:
    """What helm says when it refuses the values at `helm template` (install and upgrade do the
    same check); fails the test when helm accepts them."""
    try:
        render(values)
    except HelmError as e:
        return str(e)
    raise AssertionError(f"helm accepted values it should refuse: {values}")


def find(objects: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    """The one object of `kind` whose name ends with `suffix`."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (
        f"expected one {kind} named *{suffix}, got {[o['metadata'] for o in found]}"
    )
    return found[0]


def hub_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The hub Deployment's container."""
    return find(objects, "Deployment", "-hub")["spec"]["template"]["spec"]["containers"][0]


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    """A container's env as name -> value (a string) or valueFrom (a mapping)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def with_namespace(
    objects: list[dict[str, Any]], namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """The objects with metadata.namespace filled in where helm leaves it to the release's."""
    return [{**o, "metadata": {"namespace": namespace, **o["metadata"]}} for o in objects]
