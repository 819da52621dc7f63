"""Node specs (capacity, GPUs, labels, taints) and the Node objects made from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@dataclass
class NodeSpec:
    """One simulated node. gpus: extended resources, e.g. {"nvidia.com/gpu": 4}."""

    name: str
    cpu: str = "8"
    memory: str = "32Gi"
    gpus: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    pods: int = 110

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeSpec:
        return cls(**data)

    def to_object(self) -> dict[str, Any]:
        capacity = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": str(self.pods),
            "ephemeral-storage": "100Gi",
        }
        capacity.update({name: str(count) for name, count in self.gpus.items()})
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **self.labels,
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": {"taints": list(self.taints)} if self.taints else {},
            "status": {
                "capacity": capacity,
                "allocatable": dict(capacity),
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
                "nodeInfo": {
                    "architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.37.0-sim",
                    "containerRuntimeVersion": "sim://1.0", "kernelVersion": "", "osImage": "hubflow simulator",
                    "bootID": "", "machineID": "", "systemUUID": "", "kubeProxyVersion": "",
                },
            },
        }  # fmt: skip


def gpu_node(name: str, count: int = 4, product: str = "NVIDIA-A100-SXM4-80GB") -> NodeSpec:
    """A node with `count` NVIDIA GPUs, labelled like GPU feature discovery does, and tainted."""
    labels = {
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": str(count),
        "nvidia.com/gpu.present": "true",
    }
    return NodeSpec(
        name,
        cpu="32",
        memory="256Gi",
        gpus={"nvidia.com/gpu": count},
        labels=labels,
        taints=[dict(GPU_TAINT)],
    )


def default_nodes(count: int = 3) -> list[NodeSpec]:
    """count-1 CPU nodes and one node with 4 A100s (a single node is a CPU node)."""
    if count <= 1:
        return [NodeSpec("sim-cpu-1")]
    return [NodeSpec(f"sim-cpu-{i + 1}") for i in range(count - 1)] + [gpu_node("sim-gpu-1")]
