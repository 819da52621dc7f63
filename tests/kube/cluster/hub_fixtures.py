"""pytest fixtures of a whole hub in Kubernetes mode on the real test cluster (imported by
tests/kube/conftest.py).

The hub runs here, on this machine, as the chart's ServiceAccount of the test's namespace (the
`kube_ns` fixture's kubeconfig), never as the admin. Users' pods live in their own network
namespaces on the cluster's bridge and reach this machine only at the bridge's host address
(`Network.host_ip`, 10.<200+N>.0.1): the hub's API and the jobs service listen there, and servers
are told to call them there (as a chart's pods call the hub's Service). Users reach the hub
through its proxy on 127.0.0.1, which reaches pods at their addresses on the bridge.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hubflow.hub.settings import DEFAULT_PROFILES
from tests.helpers.hubclient import HubProcess
from tests.kube.cluster.fixtures import Namespace

#: Seconds a hub may take to answer after its start (its first list of the cluster's nodes and
#: pods, its services, on a loaded 2-core machine).
START_TIMEOUT = 180

#: The hub configuration of the Kubernetes tests (hubflow's own, plus what the node agent needs).
KUBE_HUB_CONFIG = Path(__file__).parents[1] / "hub_config.py"


def kube_hub_env(ns: Namespace, hub: HubProcess, kubeconfig: Path | None = None) -> dict[str, str]:
    """The environment of `hub` in Kubernetes mode in namespace `ns`: the hub's ServiceAccount
    (or `kubeconfig`, e.g. a fault proxy's with the same token), the hub's API and the jobs
    service on the bridge's host address, where pods reach them."""
    host = ns.cluster.cp.net.host_ip
    return {
        "HUBFLOW_MODE": "kubernetes",
        "HUBFLOW_NAMESPACE": ns.name,
        "KUBECONFIG": str(kubeconfig or ns.hub_kubeconfig),
        "HUBFLOW_HUB_IP": host,
        "HUBFLOW_JOBS_IP": host,
        "HUBFLOW_JOBS_CONNECT_URL": f"http://{host}:{hub.jobs_port}",
    }


@pytest.fixture
def kube_hub_factory(
    kube_ns: Namespace, hub_factory: Callable[..., HubProcess]
) -> Callable[..., HubProcess]:
    """Start hubs in Kubernetes mode in `kube_ns`: kube_hub_factory(kubeconfig=None,
    start=True, profiles=..., extra_env=...) (other arguments as for `hub_factory`)."""

    def make(kubeconfig: Path | None = None, start: bool = True, **kwargs: Any) -> HubProcess:
        kwargs.setdefault("profiles", [str(DEFAULT_PROFILES)])
        extra = kwargs.pop("extra_env", {})
        hub = hub_factory(config_file=KUBE_HUB_CONFIG, start=False, **kwargs)
        hub.extra_env = {**kube_hub_env(kube_ns, hub, kubeconfig), **extra}
        if start:
            hub.start(wait=False).wait_ready(timeout=START_TIMEOUT)
        return hub

    return make


@pytest.fixture
def kube_hub(kube_hub_factory: Callable[..., HubProcess]) -> HubProcess:
    """A running hub in Kubernetes mode: users' servers are pods in the real cluster, in the
    `kube_ns` namespace, reached through the hub's real proxy; profiles/default.yaml."""
    return kube_hub_factory()
