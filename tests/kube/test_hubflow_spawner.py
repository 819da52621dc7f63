"""hubflow's Kubernetes spawner against the simulated cluster: a profile becomes a pod that the
scheduler places by its GPU type, a server that answers on its pod IP, and a workspace PVC that
outlives the pod."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Any

import aiohttp
from jupyterhub.objects import Hub

from hubflow.hub.settings import DEFAULT_PROFILES
from hubflow.spawner.kubernetes import HubflowKubeSpawner
from tests.kube.sim import Simulator

#: A stand-in single-user server: leaves `<profile>.txt` in its workspace, then serves the
#: workspace over HTTP on its port.
SERVER = (
    "import functools, os, pathlib, urllib.parse, http.server as h;"
    "ws = os.environ['HUBFLOW_WORKSPACE'];"
    "pathlib.Path(ws, os.environ['HUBFLOW_PROFILE'] + '.txt').write_text('written');"
    "port = urllib.parse.urlparse(os.environ['JUPYTERHUB_SERVICE_URL']).port;"
    "handler = functools.partial(h.SimpleHTTPRequestHandler, directory=ws);"
    "h.ThreadingHTTPServer(('0.0.0.0', port), handler).serve_forever()"
)


def make_spawner(user_options: dict[str, str]) -> Any:
    user = SimpleNamespace(
        name="alice",
        id=1,
        url="/user/alice/",
        admin=False,
        groups=[SimpleNamespace(name="gpu-users")],
        settings={},
        spawners={},
        escaped_name="alice",
    )
    spawner = HubflowKubeSpawner(
        _mock=True, user=user, hub=Hub(), namespace="default",
        cmd=[sys.executable, "-c", SERVER], port=8888, start_timeout=30, http_timeout=30,
    )  # fmt: skip
    spawner.profile_paths = [str(DEFAULT_PROFILES)]
    spawner.user_options = user_options
    spawner.api_token = "token"
    return spawner


async def fetch(url: str) -> tuple[int, str]:
    """GET a URL of a server that may still be starting: (status, body)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url) as response:
                    return response.status, await response.text()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered")


async def test_gpu_profile_pod_lands_on_the_gpu_node_and_its_workspace_outlives_it(
    k8s_cluster: Simulator, kubespawner_config: None
) -> None:
    spawner = make_spawner({"profile": "gpu-1"})
    url = await spawner.start()
    pod = k8s_cluster.get("pods", "default", spawner.pod_name)
    assert pod is not None
    assert pod["spec"]["nodeName"] == "sim-gpu-1"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert url == f"http://{pod['status']['podIP']}:8888"
    assert await fetch(url + "/gpu-1.txt") == (200, "written")

    await spawner.stop()
    assert k8s_cluster.get("pods", "default", spawner.pod_name) is None
    claim = k8s_cluster.get("persistentvolumeclaims", "default", spawner.pvc_name)
    assert claim is not None and claim["status"]["phase"] == "Bound"

    # The next start (another profile, same user) finds the workspace as it was left.
    again = make_spawner({"profile": "small-cpu"})
    url = await again.start()
    pod = k8s_cluster.get("pods", "default", again.pod_name)
    assert pod is not None and pod["spec"]["nodeName"].startswith("sim-cpu-")
    assert await fetch(url + "/small-cpu.txt") == (200, "written")
    assert await fetch(url + "/gpu-1.txt") == (200, "written"), "the workspace was lost"
    await again.stop()
