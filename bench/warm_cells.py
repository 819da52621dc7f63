"""Warm cells against batch cells (run by `make bench`; not a test).

Starts a real hub in local mode, spawns a server and, in a real kernel of it, times
`%%distribute` cells with the kernel's own clock (the magic's whole path: payload, jobs
service, relay, ranks, result back into the notebook):
- a warm cell's overhead, for 2 and 4 ranks: an empty cell (submit -> result back), and submit ->
  every rank running the cell (each rank's start stamp, gathered);
- the README's all_reduce cell as a batch job and as a warm cell, and the ratio batch / warm.

Then the same warm-cell overheads on the real test cluster (tests/kube/cluster; needs root), in
Kubernetes mode: the pool is a PyTorchJob whose ranks are pods (processes in network namespaces
on the cluster's bridge), and cells go the notebook's way from here on: the pools API of the jobs
service (its pool-key routes, served on this machine), the relay over TCP to each rank's pod,
the result back (launcher/pool.py's WarmPool, as the kernel uses it; the kernel's magic on top
is the same as in local mode). Budget: under 250 ms for 2 and 4 ranks.
Usage: bench/warm_cells.py [--cluster-only | --local-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TEST_PROFILES  # noqa: E402
from tests.helpers.hubclient import HubClient, HubProcess  # noqa: E402
from tests.helpers.kernel import KernelClient  # noqa: E402

WARM_RUNS = 40
BATCH_RUNS = 3
README_CELL = (
    "import torch, torch.distributed as dist\n"
    'dist.init_process_group("gloo")\n'
    "t = torch.tensor([float(dist.get_rank() + 1)])\n"
    "dist.all_reduce(t)\n"
    "total = t.item()\n"
)

#: What each rank stamps when it starts running a cell, gathered on rank 0.
STAMP = (
    "import time as _t\n_start = _t.time()\nimport torch.distributed as _d\n"
    "starts = [None] * _d.get_world_size()\n_d.all_gather_object(starts, _start)\n"
)

#: Runs in the kernel: times cells with get_ipython().run_cell_magic and prints the figures.
TIMER = """
import json, statistics, time
ip = get_ipython()

def timed(line, cell, runs):
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        ip.run_cell_magic("distribute", line, cell)
        walls.append(time.perf_counter() - start)
    return walls

def rank_starts(line, runs):
    lags = []
    for _ in range(runs):
        sent = time.time()
        ip.run_cell_magic("distribute", line + " --pull starts", STAMP)
        lags.append(max(starts) - sent)
    return lags
"""

#: Stops this kernel's pools (a pool counts as one of the user's concurrent jobs).
STOP_POOLS = (
    "from hubflow.launcher.pool import _pools\n[p.stop() for p in _pools.values()]\nprint('{}')"
)


def in_kernel(kernel: KernelClient, code: str, timeout: float = 900) -> Any:
    """Run `code` in the kernel; the JSON it printed last."""
    out = kernel.execute(code, timeout=timeout)
    if out.status != "ok":
        raise RuntimeError(out.traceback + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def warm_figures(kernel: KernelClient, workers: int) -> dict[str, list[float]]:
    line = f"--warm --workers {workers}"
    return dict(
        in_kernel(
            kernel,
            f"timed({line!r}, 'pass', 1)\n"  # starts the pool
            f"print(json.dumps({{'empty': timed({line!r}, 'pass', {WARM_RUNS}),"
            f" 'start': rank_starts({line!r}, {WARM_RUNS})}}))",
        )
    )


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    q = [ms[round(p * (len(ms) - 1))] for p in (0.1, 0.5, 0.9)]
    return f"{q[1]:6.1f} ms median, p10 {q[0]:.1f}, p90 {q[2]:.1f}, max {ms[-1]:.1f}"


def local_main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubProcess(
            data_dir=Path(tmp) / "hub",
            profiles=[str(TEST_PROFILES)],
            # accounts of its own: test hubs running meanwhile clean up after their `alice`
            extra_env={"HUBFLOW_ACCOUNT_PREFIX": "warmbench-"},
        ).start()
        try:
            alice = HubClient(hub, "alice").login()
            alice.spawn({"profile": "cpu-small"})
            kernel = KernelClient(alice.server_url(), alice.new_token())
            in_kernel(kernel, TIMER + f"STAMP = {STAMP!r}\nprint('{{}}')")
            two = warm_figures(kernel, 2)
            warm_readme = in_kernel(
                kernel,
                f"print(json.dumps(timed('--warm --workers 2 --pull total', "
                f"{README_CELL!r}, {WARM_RUNS})))",
            )
            in_kernel(kernel, STOP_POOLS)
            four = warm_figures(kernel, 4)
            in_kernel(kernel, STOP_POOLS)
            batch = in_kernel(
                kernel,
                f"print(json.dumps(timed('--workers 2 --pull total', {README_CELL!r}, "
                f"{BATCH_RUNS})))",
            )
            kernel.close()
        finally:
            hub.kill_everything()
    print(f"warm cells, measured in the kernel ({WARM_RUNS} runs each; gloo on CPU)")
    for workers, figures in ((2, two), (4, four)):
        print(f"  {workers} ranks, empty cell (submit -> result back): {summary(figures['empty'])}")
        print(f"  {workers} ranks, submit -> every rank running:      {summary(figures['start'])}")
    med = sorted(batch)[len(batch) // 2]
    warm_med = sorted(warm_readme)[len(warm_readme) // 2]
    print(f"README cell (2 ranks), batch job ({BATCH_RUNS} runs): {med:.2f} s median")
    print(f"README cell (2 ranks), warm:                  {summary(warm_readme)}")
    print(f"batch / warm for the README cell:             {med / warm_med:.0f}x")


# -- the test cluster --------------------------------------------------------------------------
CLUSTER_BUDGET_S = 0.250


def _serve_pools(manager: Any, loop: asyncio.AbstractEventLoop) -> str:
    """The jobs service's pools API (its pool-key routes) on this machine; its URL."""
    from tornado import web
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from hubflow.jobs.pools import pool_routes

    async def serve() -> int:
        app = web.Application(pool_routes("/services/hubflow-jobs"), pools=manager)
        sockets = bind_sockets(0, "127.0.0.1")
        HTTPServer(app).add_sockets(sockets)
        return int(sockets[0].getsockname()[1])

    port = asyncio.run_coroutine_threadsafe(serve(), loop).result()
    return f"http://127.0.0.1:{port}/services/hubflow-jobs/"


def cluster_figures(workers: tuple[int, ...] = (2, 4)) -> dict[int, dict[str, list[float]]]:
    """Warm-cell overheads with pools of each size on the real test cluster."""
    from hubflow.launcher.client import JobsClient
    from hubflow.launcher.pool import WarmPool
    from tests.kube.cluster.controlplane import ControlPlane, build_binaries
    from tests.kube.cluster.fixtures import Namespace, RealCluster
    from tests.kube.cluster.hubaccount import hub_kubeconfig, install_runtime
    from tests.kube.cluster.pool_fixtures import KubePools

    figures: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(Path(tmp) / "cluster", build_binaries())
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        try:
            cp.start()
            install_runtime(cp)
            cp.kubectl("create", "namespace", "warmbench")
            kubeconfig = hub_kubeconfig(cp, Path(tmp) / "hub.kubeconfig", namespace="warmbench")
            ns = Namespace("warmbench", kubeconfig, RealCluster(cp))
            pools = KubePools.create(ns, Path(tmp) / "data", "v1")
            url = _serve_pools(pools.manager, loop)
            for n in workers:
                pool = asyncio.run_coroutine_threadsafe(pools.start(workers=n), loop).result()
                # the pool-key routes only: no JupyterHub token is used
                handle = WarmPool(JobsClient(url, "no-token"), pool.to_model(), pools.keys[pool.id])
                handle.run_cell("pass", {})  # the first cell (nothing to start: the pool is up)
                empty, start = [], []
                for _ in range(WARM_RUNS):
                    begun = time.perf_counter()
                    handle.run_cell("pass", {}, auto_push=False, print_line=lambda _: None)
                    empty.append(time.perf_counter() - begun)
                    sent = time.time()
                    out = handle.run_cell(
                        STAMP, {}, pull=["starts"], auto_push=False, print_line=lambda _: None
                    )
                    start.append(max(out["variables"]["starts"]) - sent)
                figures[n] = {"empty": empty, "start": start}
                asyncio.run_coroutine_threadsafe(pools.close(), loop).result()
        finally:
            cp.stop()
            loop.call_soon_threadsafe(loop.stop)
    return figures


def cluster_main() -> None:
    from tests.kube.cluster.fixtures import cluster_unavailable

    why = cluster_unavailable()
    if why:
        print(f"warm cells on the test cluster: skipped ({why})")
        return
    figures = cluster_figures()
    print(
        f"warm cells on the test cluster, Kubernetes mode ({WARM_RUNS} runs each; PyTorchJob "
        "pods, gloo; through the jobs service's pools API and the TCP relay)"
    )
    worst = 0.0
    for workers, fig in figures.items():
        print(f"  {workers} ranks, empty cell (submit -> result back): {summary(fig['empty'])}")
        print(f"  {workers} ranks, submit -> every rank running:      {summary(fig['start'])}")
        worst = max(worst, sorted(fig["empty"])[len(fig["empty"]) // 2])
    verdict = "within" if worst < CLUSTER_BUDGET_S else "OVER"
    print(f"  worst median overhead {worst * 1000:.1f} ms: {verdict} the 250 ms budget")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--cluster-only", action="store_true")
    which.add_argument("--local-only", action="store_true")
    args = parser.parse_args()
    if not args.cluster_only:
        local_main()
    if not args.local_only:
        cluster_main()


if __name__ == "__main__":
    main()
