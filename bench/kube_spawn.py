"""Kubernetes spawn benchmark (run by `make bench`; not a test).

Against one cluster simulator (tests/kube/sim, its own process, real HTTP), in one run:
- spawn overhead: hubflow's spawner against plain KubeSpawner given the same profile (image,
  CPU, memory, workspace PVC), each spawn timed from start() to the server answering, the two
  interleaved; the ratio of their medians;
- 100 concurrent spawns with hubflow's spawner: p50/p95 latency, and the memory the spawning
  process (the hub's side: spawners, shared reflectors, clients) holds per running server.

Pods run a tiny HTTP server instead of jupyterhub-singleuser, so the figures are the spawners'
and the API's, not JupyterLab's start-up.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jupyterhub.objects import Hub  # noqa: E402
from kubernetes_asyncio.config import kube_config  # noqa: E402
from kubespawner import KubeSpawner  # noqa: E402
from kubespawner.clients import load_config  # noqa: E402

from hubflow.hub.settings import DEFAULT_PROFILES  # noqa: E402
from hubflow.spawner.kubernetes import HubflowKubeSpawner  # noqa: E402

ROUNDS = 8
CONCURRENT = 100
SERVER = (
    "import os, urllib.parse, http.server as h;"
    "port = urllib.parse.urlparse(os.environ['JUPYTERHUB_SERVICE_URL']).port;"
    "h.ThreadingHTTPServer(('0.0.0.0', port), h.SimpleHTTPRequestHandler).serve_forever()"
)
#: Plain KubeSpawner's profile: what hubflow's `small-cpu` resolves to.
PLAIN_PROFILE = {
    "slug": "small-cpu",
    "display_name": "Small CPU",
    "kubespawner_override": {
        "image": "hubflow/jupyterlab:latest",
        "cpu_guarantee": 0.5,
        "cpu_limit": 1.0,
        "mem_guarantee": "1G",
        "mem_limit": "2G",
        "storage_pvc_ensure": True,
        "storage_capacity": "10Gi",
        "pvc_name_template": "workspace-{username}",
        "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
        "volume_mounts": [{"name": "workspace", "mountPath": "/home/jovyan"}],
    },
}


def start_simulator(work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """The simulator in a process of its own, with room for every benchmark pod."""
    nodes = [{"name": f"sim-cpu-{i}", "cpu": "128", "memory": "1Ti", "pods": 110} for i in range(4)]
    (work / "nodes.yaml").write_text(yaml.safe_dump(nodes))
    kubeconfig = work / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kube.sim", "--port", "0", "--kubeconfig", str(kubeconfig)]
        + ["--data-dir", str(work / "k8s"), "--nodes-file", str(work / "nodes.yaml")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not kubeconfig.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.1)
    time.sleep(0.5)
    return proc, kubeconfig


def make_spawner(kind: str, name: str) -> Any:
    user = SimpleNamespace(
        name=name, id=1, url=f"/user/{name}/", admin=False, groups=[], settings={},
        spawners={}, escaped_name=name,
    )  # fmt: skip
    common = {
        "_mock": True, "user": user, "hub": Hub(), "namespace": "default", "port": 8888,
        "cmd": [sys.executable, "-c", SERVER], "start_timeout": 300, "http_timeout": 300,
        # The simulator checks every object against the schema on one core: under a burst of
        # 100 creates, answers take longer than KubeSpawner's default 3 s request timeout.
        "k8s_api_request_timeout": 60, "k8s_api_request_retry_timeout": 300,
    }  # fmt: skip
    if kind == "hubflow":
        spawner = HubflowKubeSpawner(**common)
        spawner.profile_paths = [str(DEFAULT_PROFILES)]
    else:
        spawner = KubeSpawner(
            **common, profile_list=[PLAIN_PROFILE], uid=1000, gid=100, fs_gid=100,
            automount_service_account_token=False, slug_scheme="safe",
        )  # fmt: skip
    spawner.user_options = {"profile": "small-cpu"}
    spawner.api_token = "token"
    return spawner


async def spawn(spawner: Any, session: aiohttp.ClientSession) -> float:
    """Seconds from start() to the server answering."""
    began = time.perf_counter()
    url = await spawner.start()
    while True:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return time.perf_counter() - began
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.02)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def measure() -> None:
    async with aiohttp.ClientSession() as session:
        times: dict[str, list[float]] = {"hubflow": [], "plain": []}
        for i in range(ROUNDS):
            for kind in ("plain", "hubflow") if i % 2 else ("hubflow", "plain"):
                spawner = make_spawner(kind, f"{kind}-{i}")
                times[kind].append(await spawn(spawner, session))
                await spawner.stop(now=True)
        hubflow, plain = (statistics.median(times[k]) for k in ("hubflow", "plain"))
        print(f"spawn, start() -> answering, median of {ROUNDS} (interleaved):")
        print(f"  plain KubeSpawner      {plain * 1000:7.0f} ms")
        print(f"  hubflow's spawner      {hubflow * 1000:7.0f} ms")
        print(f"  ratio hubflow / plain  {hubflow / plain:7.2f}x")

        before = rss_mib()
        spawners = [make_spawner("hubflow", f"user-{i}") for i in range(CONCURRENT)]
        began = time.perf_counter()
        latencies = await asyncio.gather(*(spawn(s, session) for s in spawners))
        wall = time.perf_counter() - began
        per_user_kib = (rss_mib() - before) * 1024 / CONCURRENT
        print(f"{CONCURRENT} concurrent spawns (hubflow's spawner), all answering in {wall:.1f} s:")
        print(f"  p50 {percentile(latencies, 0.5):.2f} s, p95 {percentile(latencies, 0.95):.2f} s")
        print(f"  memory of the spawning process per running server: {per_user_kib:.0f} KiB")
        await asyncio.gather(*(s.stop(now=True) for s in spawners))
        await KubeSpawner._stop_all_reflectors()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hubflow-bench-") as tmp:
        sim, kubeconfig = start_simulator(Path(tmp))
        try:
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(kubeconfig)
            os.environ.pop("KUBERNETES_SERVICE_HOST", None)
            load_config()
            asyncio.run(measure())
        finally:
            os.killpg(sim.pid, signal.SIGTERM)
            try:
                sim.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(sim.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
