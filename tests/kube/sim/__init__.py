"""A Kubernetes cluster simulator for tests: API server, scheduler, kubelet stand-in, faults."""

from tests.kube.sim.cluster import Simulator
from tests.kube.sim.nodes import NodeSpec

__all__ = ["NodeSpec", "Simulator"]
