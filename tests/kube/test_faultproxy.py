"""The fault proxy itself (tests/kube/cluster/faultproxy.py), in front of the real API server:
a watch whose client leaves is closed at once, so nothing waits for its next event."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.kube.cluster.faultproxy import FaultProxy
from tests.kube.cluster.fixtures import Namespace


def test_a_watch_whose_client_leaves_is_closed_at_once(kube_ns: Namespace, tmp_path: Path) -> None:
    cluster = kube_ns.cluster
    with FaultProxy(kube_ns.hub_kubeconfig, tmp_path) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/api/v1/namespaces/{kube_ns.name}/pods"
        headers = {"Authorization": f"Bearer {proxy.token}"}
        # a quiet namespace: the watch has no event to send after its first ones
        with requests.get(
            url, params={"watch": "1"}, headers=headers, stream=True, timeout=10
        ) as watch:
            assert watch.status_code == 200
            cluster.wait_for(lambda: proxy.open_watches("pods") == 1, timeout=10)
        cluster.wait_for(lambda: proxy.open_watches("pods") == 0, timeout=3)
