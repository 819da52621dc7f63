"""The Kubernetes spawner turns a resolved profile into a pod that the Kubernetes schema accepts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import kube_config

from hubflow.hub.settings import DEFAULT_PROFILES
from hubflow.spawner.kubernetes import HubflowKubeSpawner

K8S_VERSION = "1.30"

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: hubflow}}]
current-context: none
"""


@pytest.fixture(autouse=True)
def kubeconfig(tmp_path, monkeypatch) -> None:
    """KubeSpawner reads a kubeconfig when built; this one points nowhere (no call is made)."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def make_spawner(
    user_options: dict[str, str],
    groups: tuple[str, ...] = ("gpu-users",),
    name: str = "Alice.Smith@example.com",
) -> Any:
    user = SimpleNamespace(
        name=name,
        id=1,
        url="/user/alice/",
        admin=False,
        groups=[SimpleNamespace(name=g) for g in groups],
        settings={},
        spawners={},
    )
    spawner = HubflowKubeSpawner(_mock=True, user=user)
    spawner.profile_paths = [str(DEFAULT_PROFILES)]
    spawner.jobs_url = "http://hub:8090/services/hubflow-jobs/"
    spawner.user_options = user_options
    return spawner


async def pod_for(user_options: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    spawner = make_spawner(user_options, **kwargs)
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    manifest: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    manifest.setdefault("apiVersion", "v1")
    manifest.setdefault("kind", "Pod")
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    return manifest


async def test_gpu_profile_becomes_a_schema_valid_pod_with_gpus_tolerations_and_workspace() -> None:
    pod = await pod_for({"profile": "gpu-1"})
    container = pod["spec"]["containers"][0]
    assert container["image"] == "hubflow/jupyterlab-cuda:latest"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert any(t.get("key") == "nvidia.com/gpu" for t in pod["spec"]["tolerations"])
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["fsGroup"] == 100
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["workspace"] == "/home/jovyan"
    claim = next(v for v in pod["spec"]["volumes"] if v["name"] == "workspace")
    assert claim["persistentVolumeClaim"]["claimName"].startswith("workspace-")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HUBFLOW_JOBS_URL"] == "http://hub:8090/services/hubflow-jobs/"
    assert env["HUBFLOW_PROFILE"] == "gpu-1"


async def test_user_names_needing_escapes_get_distinct_valid_names() -> None:
    first = make_spawner({"profile": "small-cpu"})
    second = make_spawner({"profile": "small-cpu"}, name="alice.smith@example.com")
    names = {s.pod_name for s in (first, second)} | {s.pvc_name for s in (first, second)}
    assert len(names) == 4


async def test_a_profile_not_offered_to_the_groups_is_refused_before_any_pod() -> None:
    spawner = make_spawner({"profile": "multi-gpu"}, groups=("ml-team",))
    with pytest.raises(Exception, match="unknown profile 'multi-gpu'"):
        await spawner.load_user_options()


@pytest.mark.parametrize("slug", ["small-cpu", "large-cpu", "gpu-1", "multi-gpu"])
@pytest.mark.parametrize("ide", ["jupyterlab", "vscode", "rstudio"])
async def test_every_shipped_profile_and_ide_makes_a_schema_valid_pod(slug: str, ide: str) -> None:
    pod = await pod_for({"profile": slug, f"profile-option-{slug}--ide": ide})
    container = pod["spec"]["containers"][0]
    assert ide in container["image"]
    assert container["resources"]["limits"]["cpu"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (
        env["JUPYTERHUB_DEFAULT_URL"]
        == {"jupyterlab": "/lab", "vscode": "/vscode/", "rstudio": "/rstudio/"}[ide]
    )
