"""`python -m tests.kube.sim` serves a cluster that a client reaches through the kubeconfig it writes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client, config


def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    command = [
        sys.executable,
        "-m",
        "tests.kube.sim",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--nodes",
        "2",
        "--data-dir",
        str(tmp_path / "data"),
    ]
    proc = subprocess.Popen(
        command, cwd=Path(__file__).parents[2], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not kubeconfig.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        api = config.new_client_from_config(str(kubeconfig))
        assert [n.metadata.name for n in client.CoreV1Api(api).list_node().items] == [
            "sim-cpu-1",
            "sim-gpu-1",
        ]
        api.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "API server: http://127.0.0.1:" in out
