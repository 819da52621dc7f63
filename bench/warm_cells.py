"""Warm cells against batch cells (run by `make bench`; not a test).

Starts a real hub in local mode, spawns a server and, in a real kernel of it, times
`%%distribute` cells with the kernel's own clock (the magic's whole path: payload, jobs
service, relay, ranks, result back into the notebook):
- a warm cell's overhead, for 2 and 4 ranks: an empty cell (submit -> result back), and submit ->
  every rank running the cell (each rank's start stamp, gathered);
- the README's all_reduce cell as a batch job and as a warm cell, and the ratio batch / warm.
"""

from __future__ import annotations

import json
import sys
import tempfile
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

STAMP = (
    "import time as _t\\n_start = _t.time()\\nimport torch.distributed as _d\\n"
    "starts = [None] * _d.get_world_size()\\n_d.all_gather_object(starts, _start)\\n"
)
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


def main() -> None:
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
            in_kernel(kernel, TIMER + "print('{}')")
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


if __name__ == "__main__":
    main()
