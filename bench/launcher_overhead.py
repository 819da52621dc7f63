"""Launcher overhead (run by `make bench`; not a test).

Starts a real hub in local mode, logs in as a demo user, spawns a server and measures, for
2-worker jobs on this machine:
- submit latency: POST api/jobs -> the job is Running (a rank's bootstrap started);
- the launcher's wall time for a job against bare `torchrun` running the same script;
- log latency: a worker prints a timestamp -> the client reads that line from the follow stream.
"""

from __future__ import annotations

import base64
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hubflow.jobs.supervisor import torchrun_command  # noqa: E402
from hubflow.launcher.payload import script_payload  # noqa: E402
from tests.conftest import TEST_PROFILES  # noqa: E402
from tests.helpers.hubclient import HubClient, HubProcess  # noqa: E402

RUNS = 3
SCRIPT = """\
import os, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(1000)
for _ in range(20):
    dist.all_reduce(t)
dist.destroy_process_group()
for i in range(5):
    print("stamp", time.time(), flush=True)
    time.sleep(0.2)
"""


def bare_torchrun(workspace: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        torchrun_command(2, str(workspace / "bench_job.py")),
        cwd=workspace,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def launcher_job(url: str, headers: dict[str, str]) -> tuple[float, float, list[float]]:
    """(submit -> Running, submit -> finished with logs drained, log latencies)."""
    payload = base64.b64encode(script_payload("bench_job.py", []).dumps()).decode()
    start = time.perf_counter()
    r = requests.post(
        url + "api/jobs", json={"payload": payload, "workers": 2}, headers=headers, timeout=30
    )
    r.raise_for_status()
    job_id = r.json()["id"]
    running_at = None
    while running_at is None:
        state = requests.get(url + f"api/jobs/{job_id}", headers=headers, timeout=30).json()[
            "state"
        ]
        if state in ("Running", "Succeeded"):
            running_at = time.perf_counter() - start
        elif state in ("Failed", "Cancelled"):
            raise RuntimeError(f"job {job_id} {state}")
        else:
            time.sleep(0.02)
    latencies = []
    with requests.get(
        url + f"api/jobs/{job_id}/logs",
        params={"follow": "1"},
        headers=headers,
        stream=True,
        timeout=(30, None),
    ) as stream:
        for raw in stream.iter_lines():
            line = json.loads(raw)["line"]
            if line.startswith("stamp "):
                latencies.append(time.time() - float(line.split()[1]))
    while (
        requests.get(url + f"api/jobs/{job_id}", headers=headers, timeout=30).json()["state"]
        != "Succeeded"
    ):
        time.sleep(0.02)
    return running_at, time.perf_counter() - start, latencies


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubProcess(data_dir=Path(tmp) / "hub", profiles=[str(TEST_PROFILES)]).start()
        try:
            alice = HubClient(hub, "alice").login()
            alice.spawn({"profile": "cpu-small"})
            workspace = hub.data_dir / "users" / "alice" / "workspace"
            (workspace / "bench_job.py").write_text(SCRIPT)
            headers = {"Authorization": f"token {alice.new_token()}"}
            bare, submit, total, logs = [], [], [], []
            for _ in range(RUNS):
                bare.append(bare_torchrun(workspace))
                running_at, wall, latencies = launcher_job(hub.jobs_url, headers)
                submit.append(running_at)
                total.append(wall)
                logs.extend(latencies)
        finally:
            hub.kill_everything()
    med = statistics.median
    print(f"runs: {RUNS} (2 workers, gloo, CPU), medians")
    print(f"submit latency (POST -> Running):      {med(submit):.2f} s")
    print(f"bare torchrun wall time:               {med(bare):.2f} s")
    print(f"launcher job wall time (POST -> done): {med(total):.2f} s")
    print(f"launcher / bare torchrun:              {med(total) / med(bare):.2f}x")
    print(
        f"log latency (print -> client):         {med(logs) * 1000:.0f} ms median, {max(logs) * 1000:.0f} ms max"
    )


if __name__ == "__main__":
    main()
