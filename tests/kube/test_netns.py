"""The test cluster's network plumbing: taking a cluster's network down leaves none of its pods'
processes running, even those the node agent never stopped."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.kube.cluster.controlplane import _free_index
from tests.kube.cluster.fixtures import cluster_unavailable
from tests.kube.cluster.netns import Network


@pytest.mark.skipif(bool(cluster_unavailable()), reason=cluster_unavailable() or "runs")
def test_taking_the_network_down_kills_what_still_runs_in_its_namespaces() -> None:
    index = _free_index()
    network = Network(index)
    try:
        network.up()
        ns = network.add("leftover", network.next_ip())
        left = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "300"])
        deadline = time.monotonic() + 10
        while not subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True, text=True
        ).stdout:
            assert time.monotonic() < deadline, "the process never entered its namespace"
            time.sleep(0.05)
        network.down()
        assert left.wait(timeout=10) != 0  # killed, not ended
        assert (
            ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        )
    finally:
        network.down()
        Path(f"/run/hubflow-cluster-{index}.pid").unlink(missing_ok=True)
