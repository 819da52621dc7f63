"""Running the real `helm` on the chart: render it to objects, lint it, catch what it refuses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class HubPodHere:
    """The hub pod laid out on this machine: its environment and arguments with the pod's mount
    paths moved to local folders, and where each mount path went."""

    env: dict[str, str]
    args: list[str]
    mounts: dict[str, Path]

    @property
    def config_file(self) -> Path:
        """The config file the hub is started with (`jupyterhub --config FILE`)."""
        assert self.args[:2] == ["jupyterhub", "--config"], self.args
        return Path(self.args[2])


def hub_pod_here(
    objects: list[dict[str, Any]], root: Path, secrets: Mapping[tuple[str, str], str]
) -> HubPodHere:
    """Lay the rendered hub pod out under `root`: each ConfigMap volume written as its files,
    other volumes as empty folders; Secret references get `secrets`[(name, key)]."""
    container = hub_container(objects)
    pod = find(objects, "Deployment", "-hub")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    mounts: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        local = root / mount["name"]
        local.mkdir(parents=True)
        mounts[mount["mountPath"]] = local
        source = volumes[mount["name"]].get("configMap")
        for key, text in config_maps[source["name"]]["data"].items() if source else ():
            (local / key).write_text(text, encoding="utf-8")

    def here(value: str) -> str:
        for mount_path, local in mounts.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(local) + value[len(mount_path) :]
        return value

    env = {}
    for name, value in env_of(container).items():
        if isinstance(value, dict):
            ref = value["secretKeyRef"]
            value = secrets[(ref["name"], ref["key"])]
        env[name] = here(value)
    return HubPodHere(env, [here(arg) for arg in container["args"]], mounts)
