"""hubflow's Kubernetes spawner on the real test cluster, as the hub's ServiceAccount: a profile
becomes a pod that the real scheduler places by its GPU type, a server that answers on its pod IP
(on the cluster's bridge), and a workspace PVC that outlives the pod."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from types import SimpleNamespace
from typing import Any

import aiohttp
from jupyterhub.objects import Hub

from hubflow.hub.settings import DEFAULT_PROFILES
from hubflow.spawner.kubernetes import HubflowKubeSpawner
from tests.kube.cluster.fixtures import Namespace
from tests.kube.test_kube_hub import wait_for_free_gpus

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


def make_spawner(
    user_options: dict[str, str], namespace: str, profiles: list[str] | None = None
) -> Any:
    """alice's (in gpu-users) spawner in `namespace`, running SERVER, with `profiles`."""
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
        _mock=True, user=user, hub=Hub(), namespace=namespace,
        cmd=[sys.executable, "-c", SERVER], port=8888, start_timeout=30, http_timeout=30,
    )  # fmt: skip
    spawner.profile_paths = profiles or [str(DEFAULT_PROFILES)]
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
    kubespawner_ns: Namespace,
) -> None:
    cluster, ns = kubespawner_ns.cluster, kubespawner_ns.name
    wait_for_free_gpus(cluster)
    spawner = make_spawner({"profile": "gpu-1"}, ns)
    url = await spawner.start()
    pod = cluster.get("pods", ns, spawner.pod_name)
    assert pod is not None
    assert pod["spec"]["nodeName"] == "gpu-a100-1"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert url == f"http://{pod['status']['podIP']}:8888"
    # its own address in the cluster's pod range, on the bridge this machine reaches
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(
        cluster.cp.net.pod_cidr
    )
    assert await fetch(url + "/gpu-1.txt") == (200, "written")
    assert await spawner.poll() is None

    await spawner.stop()
    assert cluster.get("pods", ns, spawner.pod_name) is None
    assert await spawner.poll() == 1
    claim = cluster.get("persistentvolumeclaims", ns, spawner.pvc_name)
    assert claim is not None and claim["status"]["phase"] == "Bound"

    # The next start (another profile, same user) finds the workspace as it was left.
    again = make_spawner({"profile": "small-cpu"}, ns)
    url = await again.start()
    pod = cluster.get("pods", ns, again.pod_name)
    assert pod is not None and pod["spec"]["nodeName"] in ("cpu-1", "cpu-2")
    assert await fetch(url + "/small-cpu.txt") == (200, "written")
    assert await fetch(url + "/gpu-1.txt") == (200, "written"), "the workspace was lost"
    await again.stop()
