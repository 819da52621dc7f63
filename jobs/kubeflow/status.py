"""A job's state from its resource's conditions and its pods: Created, Running, Restarting,
Succeeded, Failed, Suspended (Training Operator v1); Created, Suspended, Complete, Failed
(Trainer v2, whose TrainJob has no Running condition: a running pod says it); and why a rank
is still Pending, in the scheduler's or the kubelet's words."""

from __future__ import annotations

from typing import Any

from hubflow.launcher.contract import JobState

Obj = dict[str, Any]

#: Pod labels the operators set: v1 replica type and index; a Trainer v2 pod's node index
#: (its JobSet's Indexed Job's completion index).
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
MAX_REASON = 1000


def true_conditions(obj: Obj) -> dict[str, str]:
    """Condition type -> message, for the resource's conditions that are True."""
    return {
        c["type"]: c.get("message") or c.get("reason") or c["type"]
        for c in (obj.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }


def resource_state(obj: Obj, pods: list[Obj]) -> tuple[JobState, str]:
    """(state, the deciding condition's message) of a job resource and its pods."""
    conditions = true_conditions(obj)
    for kind, state in (
        ("Failed", JobState.FAILED),
        ("Succeeded", JobState.SUCCEEDED),
        ("Complete", JobState.SUCCEEDED),
    ):
        if kind in conditions:
            return state, conditions[kind]
    if "Suspended" in conditions:
        return JobState.PENDING, conditions["Suspended"]
    for kind in ("Restarting", "Running"):
        if kind in conditions:
            return JobState.RUNNING, conditions[kind]
    if any((pod.get("status") or {}).get("phase") == "Running" for pod in pods):
        return JobState.RUNNING, "a rank is running"
    return JobState.PENDING, conditions.get("Created", "")


def pod_rank(pod: Obj) -> int | None:
    """The rank of a job's pod from the operator's labels (one process per pod)."""
    labels = pod["metadata"].get("labels") or {}
    if COMPLETION_INDEX_LABEL in labels:
        return int(labels[COMPLETION_INDEX_LABEL])
    replica_type = labels.get(REPLICA_TYPE_LABEL)
    index = labels.get(REPLICA_INDEX_LABEL)
    if replica_type is None or index is None:
        return None
    if replica_type == "master":
        return 0
    # PyTorchJob workers follow the master; a TFJob's workers are the ranks themselves.
    has_master = pod["metadata"].get("ownerReferences", [{}])[0].get("kind") == "PyTorchJob"
    return int(index) + (1 if has_master else 0)


def ranked_pods(pods: list[Obj]) -> dict[int, Obj]:
    """Rank -> pod, for the pods whose rank is known."""
    ranked = {}
    for pod in pods:
        rank = pod_rank(pod)
        if rank is not None:
            ranked[rank] = pod
    return ranked


def container_started(pod: Obj) -> bool:
    """Whether the pod's container runs or ran (its log can be read)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return False


def container_exit_code(pod: Obj) -> int | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is not None:
            return int(terminated["exitCode"])
    return None


def exit_codes(pods: list[Obj]) -> dict[str, int]:
    """Rank -> exit code of the ranks whose container ended."""
    codes = {}
    for rank, pod in sorted(ranked_pods(pods).items()):
        code = container_exit_code(pod)
        if code is not None:
            codes[str(rank)] = code
    return codes


def ranks_settled(pods: list[Obj]) -> bool:
    """Whether every rank's pod that is not being stopped has reported its container's exit."""
    return all(
        container_exit_code(pod) is not None
        for pod in ranked_pods(pods).values()
        if not pod["metadata"].get("deletionTimestamp")
    )


def _waiting_reason(pod: Obj) -> str:
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition["type"] == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or condition.get("reason") or "not scheduled")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
            return f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    return ""


def pending_reason(workers: int, pods: list[Obj], suspended: bool, queue: str) -> str:
    """Why ranks are not running yet: suspended (Kueue), no pods yet, or each Pending rank's
    scheduling or container problem; "" when every rank runs or ran."""
    if suspended:
        return (
            f"suspended: waiting for Kueue to admit it from queue '{queue}'"
            if queue
            else "suspended"
        )
    ranked = ranked_pods(pods)
    if not ranked:
        return "waiting for the training operator to create the pods"
    reasons = []
    for rank in range(workers):
        pod = ranked.get(rank)
        if pod is None:
            reasons.append(f"rank {rank}: no pod yet")
        elif (pod.get("status") or {}).get("phase", "Pending") == "Pending":
            why = _waiting_reason(pod)
            if why:
                reasons.append(f"rank {rank}: {why}")
    text = "; ".join(reasons)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
