"""On the real control plane: a namespace enforcing Pod Security "restricted" admits the pods
hubflow builds (a user's server, a job's rank) and refuses a pod without their security
settings; the API server itself holds the hub's account to the chart's trimmed Role."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from tests.kube.cluster.fixtures import Namespace
from tests.kube.test_lockdown_pods import job_pod_specs
from tests.spawner.test_kube_manifest import kubeconfig, pod_for  # noqa: F401 (autouse fixture)

IMAGE = "python:3.11"


def _pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A pod with `spec` whose containers run a stand-in image and claim no volume."""
    containers = [
        {
            **c,
            "image": IMAGE,
            "command": ["true"],
            "volumeMounts": [],
            "env": [],
            # quantities as the API writes them (KubeSpawner's manifest has numbers, which the
            # API server reads alike but this client's typed call refuses)
            "resources": {
                kind: {k: str(v) for k, v in amounts.items()}
                for kind, amounts in (c.get("resources") or {}).items()
                if amounts
            },
        }
        for c in spec["containers"]
    ]
    bare = {**spec, "containers": containers, "volumes": []}
    bare.pop("serviceAccountName", None)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": bare}


async def test_restricted_refuses_a_loose_pod_and_admits_hubflows(kube_ns: Namespace) -> None:
    cp = kube_ns.cluster.cp
    cp.kubectl("label", "namespace", kube_ns.name, "pod-security.kubernetes.io/enforce=restricted")
    core = kubernetes.client.CoreV1Api(kube_ns.cluster.client(kube_ns.hub_kubeconfig))
    server = (await pod_for({"profile": "gpu-1"}))["spec"]
    (rank,) = job_pod_specs("TFJob")
    for name, spec in (("server", server), ("rank", rank)):
        spec = {
            k: v
            for k, v in spec.items()
            if k not in ("nodeSelector", "tolerations", "priorityClassName")  # not this test's
        }
        core.create_namespaced_pod(kube_ns.name, _pod(name, spec))  # admitted
    loose = _pod("loose", {"containers": [{"name": "c"}]})
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(kube_ns.name, loose)
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    for missing in ("allowPrivilegeEscalation != false", "runAsNonRoot != true", "seccompProfile"):
        assert missing in message, missing


def test_the_api_server_holds_the_hub_to_its_trimmed_role(kube_ns: Namespace) -> None:
    kubectl = str(kube_ns.cluster.cp.bins / "kubectl")

    def can(verb: str, resource: str) -> bool:
        answer = subprocess.run(
            [kubectl, "--kubeconfig", str(kube_ns.hub_kubeconfig), "-n", kube_ns.name,
             "auth", "can-i", verb, resource],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return answer.stdout.strip() == "yes"

    for verb, resource in (("create", "secrets"), ("create", "networkpolicies"),
                           ("delete", "pods"), ("patch", "trainjobs.trainer.kubeflow.org")):  # fmt: skip
        assert can(verb, resource), (verb, resource)
    for verb, resource in (
        ("get", "secrets"), ("list", "secrets"), ("update", "secrets"),
        ("create", "configmaps"), ("update", "configmaps"), ("patch", "configmaps"),
        ("create", "services"), ("patch", "pods"), ("update", "pods"),
        ("get", "networkpolicies"), ("update", "pytorchjobs.kubeflow.org"),
    ):  # fmt: skip
        assert not can(verb, resource), (verb, resource)
