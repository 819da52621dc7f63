"""The scheduler stand-in: requests, node selectors, required node affinity, taints; real wording."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

from tests.kube.sim.api import Api
from tests.kube.sim.conditions import set_condition
from tests.kube.sim.events import make_event
from tests.kube.sim.quantity import parse_quantity
from tests.kube.sim.store import Change

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


def pod_requests(spec: Obj) -> dict[str, Decimal]:
    """Effective requests: the containers' sum, or the largest init container if larger."""
    total: dict[str, Decimal] = {}
    for container in spec.get("containers", []):
        for name, value in (container.get("resources", {}).get("requests") or {}).items():
            total[name] = total.get(name, Decimal(0)) + parse_quantity(value)
    for container in spec.get("initContainers", []):
        for name, value in (container.get("resources", {}).get("requests") or {}).items():
            total[name] = max(total.get(name, Decimal(0)), parse_quantity(value))
    return total


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists" and not tol.get("key"):
            return True
        if tol.get("key") != taint["key"]:
            continue
        if tol.get("operator") == "Exists" or tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression(labels: dict[str, str], expr: Obj) -> bool:
    key, op, values = expr["key"], expr["operator"], expr.get("values", [])
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if key not in labels:
        return False
    return int(labels[key]) > int(values[0]) if op == "Gt" else int(labels[key]) < int(values[0])


def affinity_matches(spec: Obj, node: Obj) -> bool:
    labels = node["metadata"].get("labels", {})
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (
        (spec.get("affinity") or {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    if not required:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    return any(
        all(_expression(labels, e) for e in term.get("matchExpressions", []))
        and all(_expression(fields, e) for e in term.get("matchFields", []))
        for term in required.get("nodeSelectorTerms", [])
    )


class Scheduler:
    """Binds pending pods to nodes; reports FailedScheduling like kube-scheduler."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.store = api.store
        self._wake = asyncio.Event()
        self._reported: dict[str, str] = {}
        self.store.listeners.append(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.key in ("/pods", "/nodes", "/persistentvolumeclaims"):
            self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.schedule_pending()

    def _used(self) -> dict[str, Counter[str]]:
        used: dict[str, Counter[str]] = {}
        for pod in self.store.objects("/pods"):
            node = pod["spec"].get("nodeName")
            if node and pod["status"].get("phase") not in TERMINAL:
                counter = used.setdefault(node, Counter())
                counter.update(pod_requests(pod["spec"]))
                counter["pods"] += 1
        return used

    def _filter(self, pod: Obj, node: Obj, used: Counter[str]) -> tuple[list[str], bool]:
        """Why the pod cannot go to the node ([] if it can), and whether preemption could help."""
        spec = pod["spec"]
        if node["spec"].get("unschedulable"):
            return ["node(s) were unschedulable"], False
        for taint in node["spec"].get("taints", []):
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
                spec.get("tolerations", []), taint
            ):
                return [
                    f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
                ], False
        if not affinity_matches(spec, node):
            return ["node(s) didn't match Pod's node affinity/selector"], False
        allocatable = {
            k: parse_quantity(v) for k, v in node["status"].get("allocatable", {}).items()
        }
        reasons = []
        if used["pods"] + 1 > allocatable.get("pods", Decimal(110)):
            reasons.append("Too many pods")
        for name, amount in sorted(pod_requests(spec).items()):
            if amount > 0 and used[name] + amount > allocatable.get(name, Decimal(0)):
                reasons.append(f"Insufficient {name}")
        return reasons, True

    def _missing_claim(self, pod: Obj) -> str | None:
        for volume in pod["spec"].get("volumes", []):
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and not self.store.exists(
                "/persistentvolumeclaims", pod["metadata"]["namespace"], claim
            ):
                return f'persistentvolumeclaim "{claim}" not found'
        return None

    def schedule_pending(self) -> None:
        nodes = self.store.objects("/nodes")
        pods = [
            p for p in self.store.objects("/pods")
            if not p["spec"].get("nodeName") and "deletionTimestamp" not in p["metadata"]
            and p["spec"].get("schedulerName") == "default-scheduler"
        ]  # fmt: skip
        used = self._used()
        for pod in pods:
            prefilter = self._missing_claim(pod)
            fitting, reasons, preempt = [], Counter[str](), Counter[str]()
            for node in nodes if not prefilter else []:
                node_used = used.setdefault(node["metadata"]["name"], Counter())
                failed, helpful = self._filter(pod, node, node_used)
                if not failed:
                    fitting.append(node)
                reasons.update(failed)
                if failed:
                    preempt[NO_VICTIMS if helpful else NOT_HELPFUL] += 1
            if fitting:
                node = min(
                    fitting,
                    key=lambda n: (
                        self._load(n, used[n["metadata"]["name"]]),
                        n["metadata"]["name"],
                    ),
                )
                used[node["metadata"]["name"]].update(pod_requests(pod["spec"]))
                used[node["metadata"]["name"]]["pods"] += 1
                self._bind(pod, node["metadata"]["name"])
            else:
                if prefilter:
                    preempt[NOT_HELPFUL] = len(nodes)
                self._unschedulable(pod, len(nodes), prefilter, reasons, preempt)

    @staticmethod
    def _load(node: Obj, used: Counter[str]) -> Decimal:
        allocatable = node["status"].get("allocatable", {})
        shares = [
            used[r] / parse_quantity(allocatable[r])
            for r in ("cpu", "memory")
            if parse_quantity(allocatable.get(r, "0"))
        ]
        return sum(shares, Decimal(0))

    def _bind(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        pod["spec"]["nodeName"] = node
        set_condition(pod, {"type": "PodScheduled", "status": "True"})
        pod = self.store.update("/pods", pod)
        self._reported.pop(meta["uid"], None)
        message = f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}"
        self.api.create(
            self.api.registry.by_key("/events"),
            meta["namespace"],
            make_event(pod, "Normal", "Scheduled", message, "default-scheduler"),
        )

    def _unschedulable(
        self,
        pod: Obj,
        total: int,
        prefilter: str | None,
        reasons: Counter[str],
        preempt: Counter[str],
    ) -> None:
        message = f"0/{total} nodes are available:"
        if prefilter:
            message += f" {prefilter}."
        elif reasons:
            message += (
                " "
                + ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
                + "."
            )
        histogram = ", ".join(sorted(f"{count} {reason}" for reason, count in preempt.items()))
        message += f" preemption: 0/{total} nodes are available: {histogram}."
        meta = pod["metadata"]
        if self._reported.get(meta["uid"]) == message:
            return
        self._reported[meta["uid"]] = message
        set_condition(
            pod,
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
            },
        )
        pod = self.store.update("/pods", pod)
        self.api.create(
            self.api.registry.by_key("/events"),
            meta["namespace"],
            make_event(pod, "Warning", "FailedScheduling", message, "default-scheduler"),
        )
