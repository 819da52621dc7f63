"""What rendered NetworkPolicies let through, by the Kubernetes rules, for the chart's tests.

Covers the parts the chart uses: podSelector/namespaceSelector matchLabels, ipBlock with
except, numeric and named ports, Ingress and Egress policy types. A pod is isolated in a
direction once any policy of its namespace selects it for that direction; a connection is then
allowed when a rule of one of those policies admits the peer and the port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    """A pod as NetworkPolicies see it: namespace, labels, IP and named container ports."""

    namespace: str
    labels: Mapping[str, str]
    ip: str = "10.0.0.1"
    ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Address:
    """An address outside the cluster's pods (only ipBlock peers match it)."""

    ip: str


Peer = Pod | Address


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if set(selector) - {"matchLabels"}:
        raise NotImplementedError(f"selector fields {set(selector)} are not evaluated here")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(peer_rule: Mapping[str, Any], policy_ns: str, peer: Peer) -> bool:
    if "ipBlock" in peer_rule:
        block = peer_rule["ipBlock"]
        ip = ipaddress.ip_address(peer.ip)
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
        )
    if not isinstance(peer, Pod):
        return False
    if "namespaceSelector" in peer_rule:
        ns_labels = {"kubernetes.io/metadata.name": peer.namespace}
        if not _selects(peer_rule["namespaceSelector"], ns_labels):
            return False
    elif peer.namespace != policy_ns:
        return False
    return _selects(peer_rule.get("podSelector", {}), peer.labels)


def _port_matches(
    rule_ports: list[Mapping[str, Any]] | None, target: Pod | Address, port: int, protocol: str
) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        wanted = entry.get("port")
        if entry.get("protocol", "TCP") != protocol:
            continue
        if wanted is None or wanted == port:
            return True
        if isinstance(wanted, str) and isinstance(target, Pod) and target.ports.get(wanted) == port:
            return True
    return False


def _admits(
    policies: Iterable[Mapping[str, Any]],
    subject: Pod,
    direction: str,
    peer: Peer,
    target: Pod | Address,
    port: int,
    protocol: str,
) -> bool:
    """Whether `subject`'s policies for `direction` let the connection through."""
    rule_key, peer_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == subject.namespace
        and direction in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"]["podSelector"], subject.labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        ns = policy["metadata"]["namespace"]
        for rule in policy["spec"].get(rule_key, []):
            peers = rule.get(peer_key)
            if peers and not any(_peer_matches(r, ns, peer) for r in peers):
                continue
            if _port_matches(rule.get("ports"), target, port, protocol):
                return True
    return False


def allowed(
    policies: list[Mapping[str, Any]], source: Peer, target: Peer, port: int, protocol: str = "TCP"
) -> bool:
    """Whether a connection from `source` to `target` on `port` gets through both ends'
    policies (the target's ingress when it is a pod, the source's egress when it is one).
    Every policy names its namespace (see chart.with_namespace)."""
    out = isinstance(source, Address) or _admits(
        policies, source, "Egress", target, target, port, protocol
    )
    if isinstance(target, Address):
        return out
    return out and _admits(policies, target, "Ingress", source, target, port, protocol)
