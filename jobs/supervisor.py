"""The supervisor of one local job (`python -m hubflow.jobs.supervisor JOB_DIR`).

The jobs service starts it detached, in its own session, so that it outlives the service; it
starts the ranks (torchrun for `pytorch`, N plain processes for `python` and `tensorflow`),
waits for them and writes `exit.json`. Cancelling the job kills its whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from hubflow.launcher.contract import GPUS_PER_WORKER_ENV, JOB_DIR_ENV, JOB_GPUS_ENV

LAUNCH_FILE = "launch.json"
EXIT_FILE = "exit.json"
WORKER_MODULE = "hubflow.launcher.worker"


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def torchrun_command(workers: int, *target: str) -> list[str]:
    """torchrun, single node, `workers` ranks of `target` (default: the worker bootstrap)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(workers),
        *(target or ("-m", WORKER_MODULE)),
    ]


def rank_environments(framework: str, workers: int) -> list[dict[str, str]]:
    """Per-rank variables for the frameworks the supervisor launches itself: torchrun's
    (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, ...) and, for tensorflow, TF_CONFIG."""
    ports = free_ports(workers if framework == "tensorflow" else 1)
    envs = []
    for rank in range(workers):
        env = {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "GROUP_RANK": "0",
            "WORLD_SIZE": str(workers),
            "LOCAL_WORLD_SIZE": str(workers),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(ports[0]),
        }
        if framework == "tensorflow":
            cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
            env["TF_CONFIG"] = json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": rank}}
            )
        envs.append(env)
    return envs


def run_processes(framework: str, workers: int, env: dict[str, str]) -> dict[str, int]:
    """Run one process per rank; when one fails the others are stopped (as torchrun does)."""
    command = [sys.executable, "-m", WORKER_MODULE]
    procs = [
        subprocess.Popen(command, env={**env, **extra})
        for extra in rank_environments(framework, workers)
    ]
    codes: dict[int, int] = {}
    while len(codes) < len(procs):
        for rank, proc in enumerate(procs):
            if rank not in codes and proc.poll() is not None:
                codes[rank] = proc.returncode
                if proc.returncode != 0:
                    for other in procs:
                        if other.poll() is None:
                            other.terminate()
        time.sleep(0.05)
    return {str(rank): code for rank, code in sorted(codes.items())}


def supervise(job_dir: Path) -> int:
    """Run the job described in `job_dir/launch.json`; write `exit.json`; return the exit code."""
    launch = json.loads((job_dir / LAUNCH_FILE).read_text())
    framework, workers = launch["framework"], int(launch["workers"])
    env = dict(os.environ)
    env[JOB_DIR_ENV] = str(job_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env[JOB_GPUS_ENV] = ",".join(launch.get("gpus", []))
    env[GPUS_PER_WORKER_ENV] = str(launch.get("gpus_per_worker", 0))
    if framework == "pytorch":
        returncode = subprocess.call(torchrun_command(workers), env=env)
        codes = {"torchrun": returncode}
    else:
        codes = run_processes(framework, workers, env)
        returncode = next((c for c in codes.values() if c != 0), 0)
    exit_info = {"exit_code": returncode, "exit_codes": codes, "finished": time.time()}
    tmp = job_dir / f".{EXIT_FILE}.tmp"
    tmp.write_text(json.dumps(exit_info))
    os.replace(tmp, job_dir / EXIT_FILE)
    return returncode


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m hubflow.jobs.supervisor JOB_DIR", file=sys.stderr)
        return 2
    # Cancellation signals the whole group; the default SIGTERM action ends this process too.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return supervise(Path(sys.argv[1]))


if __name__ == "__main__":
    sys.exit(main())
