"""The chart locks Kubernetes mode down: job pods under NetworkPolicies (the chart's, and the one
the jobs service makes per job, evaluated together by tests/helm/netpol.py), the users'
namespace enforcing Pod Security "restricted", the chart's own pods meeting it, and the hub's
JUPYTERHUB_CRYPT_KEY made once and kept."""

from __future__ import annotations

import base64
from typing import Any

from hubflow.jobs.kubeflow.manifests import job_labels, job_network_policy, placement_for
from hubflow.jobs.store import JobRecord
from tests.helm.chart import NAMESPACE, env_of, find, hub_container, notes, render, with_namespace
from tests.helm.netpol import Address, Pod, allowed
from tests.kube.pod_security import restricted_violations
from tests.kube.test_lockdown_pods import job_server

RANK_PORT, TF_PORT, HUB_PORT, JOBS_PORT = 29500, 2222, 8081, 8090
METADATA = Address("169.254.169.254")
API_SERVERS = (Address("10.96.0.1"), Address("172.20.0.2"), Address("192.168.49.2"))


class JobNetwork:
    """Two users' jobs in the users' namespace, beside a server, the hub and a stranger."""

    def __init__(self, objects: list[dict[str, Any]], users_ns: str) -> None:
        self.objects = objects
        self.ns = users_ns
        self.policies = [o for o in with_namespace(objects) if o["kind"] == "NetworkPolicy"]
        self.a0, self.a1 = (
            self._rank("aaaaaaaaaaaa", "alice", 0),
            self._rank("aaaaaaaaaaaa", "alice", 1),
        )
        self.b0 = self._rank("bbbbbbbbbbbb", "bob", 0)
        self.server = Pod(users_ns, {"component": "singleuser-server",
                                     "app.kubernetes.io/managed-by": "kubespawner"}, "10.2.0.10")  # fmt: skip
        template = find(objects, "Deployment", "-hub")["spec"]["template"]
        self.hub = Pod(NAMESPACE, template["metadata"]["labels"], "10.1.0.2")
        self.stranger = Pod("default", {"app": "anything"}, "10.3.0.1")
        self.dns = Pod("kube-system", {"k8s-app": "kube-dns"}, "10.96.0.10")

    def _rank(self, job_id: str, user: str, rank: int) -> Pod:
        job = JobRecord(id=job_id, user=user, framework="pytorch", workers=2)
        placement = placement_for("PyTorchJob", job_server(self.ns), 0, self.ns, 600)
        owner = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                 "metadata": {"name": f"hubflow-{job_id}", "uid": "u"}}  # fmt: skip
        policy = job_network_policy(job, placement, owner)
        if policy not in self.policies:
            self.policies.append(policy)
        labels = {**job_labels(job), "training.kubeflow.org/replica-index": str(rank)}
        return Pod(self.ns, labels, f"10.2.1.{rank + (10 if user == 'bob' else 0)}")

    def can(self, source: Pod | Address, target: Pod | Address, port: int, proto: str = "TCP"):
        return allowed(self.policies, source, target, port, proto)


def test_a_rank_is_reached_by_its_own_job_only(default_objects: list[dict[str, Any]]) -> None:
    c = JobNetwork(default_objects, NAMESPACE)
    assert c.can(c.a1, c.a0, RANK_PORT) and c.can(c.a0, c.a1, TF_PORT)
    for outsider in (c.b0, c.server, c.hub, c.stranger, Address("203.0.113.9")):
        assert not c.can(outsider, c.a0, RANK_PORT), outsider
        assert not c.can(outsider, c.a0, TF_PORT), outsider
    assert not c.can(c.a0, c.b0, RANK_PORT)


def test_a_rank_reaches_dns_and_the_internet_never_metadata_api_server_or_hub(
    default_objects: list[dict[str, Any]],
) -> None:
    c = JobNetwork(default_objects, NAMESPACE)
    assert c.can(c.a0, c.dns, 53, "UDP") and c.can(c.a0, c.dns, 53, "TCP")
    assert c.can(c.a0, Address("151.101.0.223"), 443)  # pypi.org
    assert not c.can(c.a0, METADATA, 80)
    for api in API_SERVERS:
        assert not c.can(c.a0, api, 443) and not c.can(c.a0, api, 6443), api
    assert not c.can(c.a0, c.hub, HUB_PORT) and not c.can(c.a0, c.hub, JOBS_PORT)
    assert not c.can(c.a0, c.server, 8888)
    assert not c.can(c.a0, c.stranger, 5432)


def test_job_egress_follows_the_values() -> None:
    api_server = {"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}], "ports": [{"port": 443}]}
    objects = render({"jobs": {"networkPolicy": {"allowInternet": False, "egress": [api_server]}}})
    c = JobNetwork(objects, NAMESPACE)
    assert c.can(c.a0, Address("10.96.0.1"), 443)
    assert not c.can(c.a0, Address("151.101.0.223"), 443)
    assert not c.can(c.a0, METADATA, 80)
    assert c.can(c.a0, c.a1, RANK_PORT)


def test_the_job_policy_lives_in_the_users_namespace(gpu_objects: list[dict[str, Any]]) -> None:
    policy = find(gpu_objects, "NetworkPolicy", "-jobs")
    assert policy["metadata"]["namespace"] == "hubflow-users"
    c = JobNetwork(gpu_objects, "hubflow-users")
    assert c.can(c.a1, c.a0, RANK_PORT) and not c.can(c.b0, c.a0, RANK_PORT)
    # Servers get no internet in the example, and ranks follow; the mirror is theirs too.
    assert not c.can(c.a0, Address("151.101.0.223"), 443)
    assert c.can(c.a0, Pod("mirrors", {"app": "devpi"}, "10.4.0.1"), 3141)
    internet = render({"users": {"networkPolicy": {"allowInternet": False}},
                       "jobs": {"networkPolicy": {"allowInternet": True}}})  # fmt: skip
    assert JobNetwork(internet, NAMESPACE).can(c.a0, Address("151.101.0.223"), 443)
    off = render({"jobs": {"networkPolicy": {"enabled": False}}})
    assert not [o for o in off if o["metadata"]["name"].endswith("-jobs")]


def test_a_separate_users_namespace_enforces_restricted(gpu_objects: list[dict[str, Any]]):
    namespace = find(gpu_objects, "Namespace", "hubflow-users")
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert namespace["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    loose = render({"users": {"namespace": "team", "podSecurity": {"enforce": "baseline"}}})
    assert (
        find(loose, "Namespace", "team")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        == "baseline"
    )
    untouched = render({"users": {"namespace": "team", "podSecurity": {"enforce": ""}}})
    assert not [o for o in untouched if o["kind"] == "Namespace"]


def test_the_release_namespace_is_labelled_by_the_operator(default_objects) -> None:
    assert not [o for o in default_objects if o["kind"] == "Namespace"]
    text = notes()
    assert "kubectl label namespace hubflow pod-security.kubernetes.io/enforce=restricted" in text
    assert "kubectl label" not in notes({"users": {"podSecurity": {"enforce": ""}}})


def test_the_charts_own_pods_are_restricted(default_objects: list[dict[str, Any]]) -> None:
    for deployment in (o for o in default_objects if o["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert restricted_violations(spec) == [], deployment["metadata"]["name"]


def test_the_crypt_key_is_a_random_32_byte_hex_key(default_objects: list[dict[str, Any]]):
    secret = find(default_objects, "Secret", "-hub-crypt-key")
    key = base64.b64decode(secret["data"]["crypt-key"]).decode()
    assert len(bytes.fromhex(key)) == 32
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    env = env_of(hub_container(default_objects))
    assert env["JUPYTERHUB_CRYPT_KEY"] == {
        "secretKeyRef": {"name": "hf-hubflow-hub-crypt-key", "key": "crypt-key"}
    }
    again = find(render(), "Secret", "-hub-crypt-key")["data"]["crypt-key"]
    assert again != secret["data"]["crypt-key"]  # made per installation, then looked up


def test_an_existing_crypt_key_secret_is_used_as_is() -> None:
    objects = render({"hub": {"cryptKeySecret": "my-key"}})
    assert not [o for o in objects if o["metadata"]["name"].endswith("-hub-crypt-key")]
    env = env_of(hub_container(objects))
    assert env["JUPYTERHUB_CRYPT_KEY"] == {"secretKeyRef": {"name": "my-key", "key": "crypt-key"}}
