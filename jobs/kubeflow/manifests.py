"""The Kubernetes objects of one job: the Kubeflow job resource (TrainJob, PyTorchJob or TFJob)
and the Secret with its payload, owned by the job resource so that they go together.

Every rank runs the user's server image with the user's workspace PVC mounted at the same path,
the payload mounted read-only, the per-worker resources of the user's profile, the profile's
node selector and tolerations, labels naming the user and the job (the chart's job
NetworkPolicy selects them), no service account token, and the Pod Security "restricted"
profile: the server's uid, gid and fsGroup, no privilege escalation, no capabilities, the
runtime's default seccomp profile.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from kubespawner.slugs import safe_slug

from hubflow.jobs.kubeflow.discovery import PYTORCHJOB, TFJOB, TORCH_RUNTIME, TRAINJOB
from hubflow.jobs.store import JobRecord
from hubflow.launcher.contract import JOB_PAYLOAD_ENV, JOB_RECORD_KEY_ENV
from hubflow.profiles.server_record import ServerRecord

Obj = dict[str, Any]

PAYLOAD_DIR = "/var/run/hubflow/payload"
PAYLOAD_KEY = "payload.pkl"
#: The job's record key beside the payload: the ranks' framed records carry its HMAC.
RECORD_KEY = "record.key"
#: What fits in a Secret (1 MiB in all) with room for its metadata.
SECRET_PAYLOAD_BYTES = 1000 * 1000
#: Each rank's container: no privilege escalation, no Linux capabilities.
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
#: The service account the ranks run as; the backend creates it without a token.
SERVICE_ACCOUNT = "hubflow-job"
JOB_LABEL = "hubflow.io/job-id"
USER_LABEL = "hubflow.io/user"
#: On the pods of a warm pool's ranks: the chart's relay policy opens their relay port (to the
#: hub's pod only); other job pods have it closed.
WARM_POOL_LABEL = "hubflow.io/warm-pool"
USER_ANNOTATION = "hubflow.io/user"
#: The user's groups (a JSON list) on each rank's pod: the hub counts the pods' GPUs against
#: the user's and the groups' GPU quotas.
GROUPS_ANNOTATION = "hubflow.io/groups"
MANAGED_BY = {"app.kubernetes.io/managed-by": "hubflow", "app.kubernetes.io/component": "job"}
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
#: The runtimePatches manager hubflow writes under.
PATCH_MANAGER = "hubflow.io/jobs"
WORKER_COMMAND = ["python", "-m", "hubflow.launcher.worker"]
#: Trainer v2 sets PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_* for torchrun.
TORCHRUN_COMMAND = ["python", "-m", "torch.distributed.run", "-m", "hubflow.launcher.worker"]
#: Container names the operators look for (Training Operator v1) or the runtime defines (v2).
CONTAINER_NAMES = {TRAINJOB.kind: "node", PYTORCHJOB.kind: "pytorch", TFJOB.kind: "tensorflow"}
#: The replicated job of the torch-distributed runtime.
TRAINJOB_REPLICATED_JOB = "node"
#: The uid, gid and fsGroup of ranks whose server recorded none (the spawner's defaults).
DEFAULT_RUN_AS = {"uid": 1000, "gid": 100, "fs_gid": 100}


@dataclass(frozen=True)
class Placement:
    """Where and how a job's ranks run, fixed when it is submitted (kept as JobRecord.spec)."""

    kind: str
    namespace: str
    image: str
    pvc_name: str
    mount_path: str
    resources: Obj
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Obj] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    queue: str = ""
    #: The pods' PriorityClass (the profile's priority_class_name).
    priority_class: str = ""
    #: Kueue's WorkloadPriorityClass (the profile's `kueue.x-k8s.io/priority-class` label): a
    #: different object from a PriorityClass, which Kueue would not find under that label.
    workload_priority_class: str = ""
    ttl_seconds: int = 3600
    #: The profile's extra volumes as the server mounts them: {"name", "mount_path",
    #: "read_only", "claim" or "host_path"}.
    extra_volumes: list[Obj] = field(default_factory=list)
    #: The user's server's uid, gid and fsGroup (the ranks write the same workspace).
    run_as: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RUN_AS))
    #: The job's record key (hex), made when it is submitted.
    record_key: str = ""
    #: Whether the ranks run a warm pool's loop (their pods carry WARM_POOL_LABEL).
    warm_pool: bool = False

    def to_dict(self) -> Obj:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Obj) -> Placement:
        return cls(**data)


def _quantity(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def worker_resources(profile: Obj, gpus_per_worker: int) -> Obj:
    """One worker's requests and limits: the profile's CPU and memory, the job's GPUs."""
    requests, limits = {}, {}
    cpu_request = profile.get("cpu_guarantee") or profile.get("cpu_limit")
    mem_request = profile.get("mem_guarantee") or profile.get("mem_limit")
    if cpu_request:
        requests["cpu"] = _quantity(cpu_request)
    if mem_request:
        requests["memory"] = _quantity(mem_request)
    if profile.get("cpu_limit"):
        limits["cpu"] = _quantity(profile["cpu_limit"])
    if profile.get("mem_limit"):
        limits["memory"] = _quantity(profile["mem_limit"])
    if gpus_per_worker:
        resource = profile.get("gpu_resource") or "nvidia.com/gpu"
        requests[resource] = limits[resource] = str(gpus_per_worker)
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def job_volumes(profile: Obj, claims: dict[str, str]) -> list[Obj]:
    """The profile's extra volumes as the user's server mounts them: an existing claim, a node
    directory, or a volume made for the user (its claim as the spawner recorded it in `claims`;
    one the spawner did not record is left out)."""
    volumes = []
    for vol in profile.get("extra_volumes") or []:
        claim = vol.get("claim") or (claims.get(vol["name"]) if vol.get("size") else None)
        if claim or vol.get("host_path"):
            volumes.append(
                {
                    "name": vol["name"],
                    "mount_path": vol["mount_path"],
                    "read_only": vol.get("read_only", False),
                    "claim": claim,
                    "host_path": vol.get("host_path"),
                }
            )
    return volumes


def placement_for(
    kind: str, server: ServerRecord, gpus_per_worker: int, default_namespace: str, ttl: int
) -> Placement:
    """A job's placement from its server: image, workspace PVC and profile; queue and priority
    class from the profile's kubespawner_override (extra_labels, priority_class_name)."""
    profile = server.profile
    override = profile.get("kubespawner_override") or {}
    environment = {
        k: str(v) for k, v in (profile.get("environment") or {}).items()
        if not k.startswith("JUPYTERHUB_")
    }  # fmt: skip
    return Placement(
        kind=kind,
        namespace=server.namespace or default_namespace,
        image=str(profile.get("image") or ""),
        pvc_name=server.pvc_name,
        mount_path=server.workspace,
        resources=worker_resources(profile, gpus_per_worker),
        node_selector=dict(profile.get("node_selector") or {}),
        tolerations=list(profile.get("tolerations") or []),
        environment=environment,
        queue=str((override.get("extra_labels") or {}).get(QUEUE_LABEL, "")),
        priority_class=str(override.get("priority_class_name") or ""),
        workload_priority_class=str(
            (override.get("extra_labels") or {}).get(KUEUE_PRIORITY_LABEL, "")
        ),
        ttl_seconds=ttl,
        extra_volumes=job_volumes(profile, server.claims),
        run_as={**DEFAULT_RUN_AS, **server.run_as},
    )


def extra_volume_name(name: str) -> str:
    """The pod volume of a profile's extra volume: `extra-<name>`, kept a DNS label (at most 63
    characters; the API server refuses a pod with a longer volume name): a long name is cut and
    ends with a hash of the whole, so two long names stay apart."""
    full = f"extra-{name}"
    if len(full) <= 63:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{full[:54].rstrip('-')}-{digest}"


def resource_name(job: JobRecord) -> str:
    """The job resource's name (the job id is 12 hex digits: a valid DNS label)."""
    return f"hubflow-{job.id}"


def secret_name(job: JobRecord) -> str:
    return f"hubflow-{job.id}-payload"


def job_labels(job: JobRecord) -> dict[str, str]:
    """Labels on every object of the job: who it belongs to and which job it is."""
    return {**MANAGED_BY, USER_LABEL: safe_slug(job.user, max_length=63), JOB_LABEL: job.id}


def pod_metadata(job: JobRecord, placement: Placement) -> Obj:
    """The metadata of each rank's pod: the job's labels (and a warm pool's), its user and the
    user's groups."""
    groups = json.dumps(sorted(job.groups or []))
    pool = {WARM_POOL_LABEL: "true"} if placement.warm_pool else {}
    return {
        "labels": {**job_labels(job), **pool},
        "annotations": {USER_ANNOTATION: job.user, GROUPS_ANNOTATION: groups},
    }


def _metadata(
    job: JobRecord, placement: Placement, extra_labels: dict[str, str] | None = None
) -> Obj:
    return {
        "name": resource_name(job),
        "namespace": placement.namespace,
        "labels": {**job_labels(job), **(extra_labels or {})},
        "annotations": {USER_ANNOTATION: job.user},
    }


def _env(job: JobRecord, placement: Placement) -> list[Obj]:
    env = {
        **placement.environment,
        "HOME": placement.mount_path,
        "USER": job.user,
        "HUBFLOW_WORKSPACE": placement.mount_path,
        "HUBFLOW_JOB_ID": job.id,
        JOB_PAYLOAD_ENV: f"{PAYLOAD_DIR}/{PAYLOAD_KEY}",
        JOB_RECORD_KEY_ENV: f"{PAYLOAD_DIR}/{RECORD_KEY}",
        "PYTHONUNBUFFERED": "1",
    }
    return [{"name": name, "value": value} for name, value in env.items()]


def _volumes(job: JobRecord, placement: Placement) -> list[Obj]:
    volumes = [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": placement.pvc_name}},
        {"name": "payload", "secret": {"secretName": secret_name(job)}},
    ]
    for vol in placement.extra_volumes:
        source = (
            {"persistentVolumeClaim": {"claimName": vol["claim"]}}
            if vol.get("claim")
            else {"hostPath": {"path": vol["host_path"], "type": "Directory"}}
        )
        volumes.append({"name": extra_volume_name(vol["name"]), **source})
    return volumes


def _mounts(placement: Placement) -> list[Obj]:
    mounts: list[Obj] = [
        {"name": "workspace", "mountPath": placement.mount_path},
        {"name": "payload", "mountPath": PAYLOAD_DIR, "readOnly": True},
    ]
    for vol in placement.extra_volumes:
        mounts.append(
            {
                "name": extra_volume_name(vol["name"]),
                "mountPath": vol["mount_path"],
                "readOnly": bool(vol.get("read_only")),
            }
        )
    return mounts


def pod_security(placement: Placement) -> Obj:
    """The ranks' pod securityContext: non-root as the user's server runs, seccomp on."""
    run_as = placement.run_as
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as["uid"],
        "runAsGroup": run_as["gid"],
        "fsGroup": run_as["fs_gid"],
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_template(job: JobRecord, placement: Placement, container: str) -> Obj:
    """A Training Operator v1 replica's pod template."""
    spec: Obj = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(placement),
        "volumes": _volumes(job, placement),
        "containers": [
            {
                "name": container,
                "image": placement.image,
                "command": WORKER_COMMAND,
                "env": _env(job, placement),
                "resources": placement.resources,
                "volumeMounts": _mounts(placement),
                "securityContext": CONTAINER_SECURITY,
            }
        ],
    }
    if placement.node_selector:
        spec["nodeSelector"] = placement.node_selector
    if placement.tolerations:
        spec["tolerations"] = placement.tolerations
    if placement.priority_class:
        spec["priorityClassName"] = placement.priority_class
    return {"metadata": pod_metadata(job, placement), "spec": spec}


def _run_policy(placement: Placement) -> Obj:
    """Created suspended (the payload Secret must exist first; Kueue admits queued jobs); pods are
    kept until the TTL so that their logs can be read to the end (the backend stops the ranks
    still running when the job failed)."""
    policy: Obj = {
        "suspend": True,
        "backoffLimit": 0,
        "cleanPodPolicy": "None",
        "ttlSecondsAfterFinished": placement.ttl_seconds,
    }
    scheduling = {}
    if placement.queue:
        scheduling["queue"] = placement.queue
    if placement.priority_class:
        scheduling["priorityClass"] = placement.priority_class
    if scheduling:
        policy["schedulingPolicy"] = scheduling
    return policy


def _queue_labels(placement: Placement) -> dict[str, str]:
    """Kueue's labels on the job: its LocalQueue and WorkloadPriorityClass (never a
    PriorityClass name: Kueue would make no Workload and the job would stay suspended)."""
    labels = {QUEUE_LABEL: placement.queue} if placement.queue else {}
    if placement.queue and placement.workload_priority_class:
        labels[KUEUE_PRIORITY_LABEL] = placement.workload_priority_class
    return labels


def _replica(job: JobRecord, placement: Placement, kind: str, count: int) -> Obj:
    """A v1 replica spec: `count` pods of one process, not restarted."""
    template = _pod_template(job, placement, CONTAINER_NAMES[kind])
    return {"replicas": count, "restartPolicy": "Never", "template": template}


def _v1_job(job: JobRecord, placement: Placement, kind: str, spec: Obj) -> Obj:
    return {
        "apiVersion": PYTORCHJOB.api_version,
        "kind": kind,
        "metadata": _metadata(job, placement, _queue_labels(placement)),
        "spec": {"runPolicy": _run_policy(placement), **spec},
    }


def pytorchjob(job: JobRecord, placement: Placement) -> Obj:
    """A PyTorchJob: one Master (rank 0) and workers - 1 Workers, one process each."""
    replicas = {"Master": _replica(job, placement, PYTORCHJOB.kind, 1)}
    if job.workers > 1:
        replicas["Worker"] = _replica(job, placement, PYTORCHJOB.kind, job.workers - 1)
    return _v1_job(
        job, placement, PYTORCHJOB.kind, {"nprocPerNode": "1", "pytorchReplicaSpecs": replicas}
    )


def tfjob(job: JobRecord, placement: Placement) -> Obj:
    """A TFJob of `workers` Workers (worker 0 is rank 0)."""
    replicas = {"Worker": _replica(job, placement, TFJOB.kind, job.workers)}
    return _v1_job(job, placement, TFJOB.kind, {"tfReplicaSpecs": replicas})


def trainjob(job: JobRecord, placement: Placement) -> Obj:
    """A TrainJob on the torch-distributed runtime: `workers` nodes of one process each, the
    pods' volumes, scheduling, security and service account set through a runtime patch (which
    has no automountServiceAccountToken: the account's own setting keeps the token out)."""
    pod_spec: Obj = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "securityContext": pod_security(placement),
        "volumes": _volumes(job, placement),
        "containers": [
            {
                "name": CONTAINER_NAMES[TRAINJOB.kind],
                "volumeMounts": _mounts(placement),
                "securityContext": CONTAINER_SECURITY,
            }
        ],
    }
    if placement.node_selector:
        pod_spec["nodeSelector"] = placement.node_selector
    if placement.tolerations:
        pod_spec["tolerations"] = placement.tolerations
    labels = {"labels": job_labels(job)}
    patch = {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": TRAINJOB_REPLICATED_JOB,
                            "template": {
                                "metadata": labels,
                                "spec": {
                                    "template": {
                                        "metadata": pod_metadata(job, placement),
                                        "spec": pod_spec,
                                    }
                                },
                            },
                        }
                    ]
                }
            }
        },
    }
    extra = _queue_labels(placement)
    return {
        "apiVersion": TRAINJOB.api_version,
        "kind": TRAINJOB.kind,
        "metadata": _metadata(job, placement, extra),
        "spec": {
            "runtimeRef": {
                "apiGroup": TRAINJOB.group,
                "kind": "ClusterTrainingRuntime",
                "name": TORCH_RUNTIME,
            },
            "suspend": True,
            "trainer": {
                "image": placement.image,
                "command": TORCHRUN_COMMAND,
                "env": _env(job, placement),
                "numNodes": job.workers,
                "numProcPerNode": 1,
                "resourcesPerNode": placement.resources,
            },
            "runtimePatches": [patch],
        },
    }


BUILDERS = {TRAINJOB.kind: trainjob, PYTORCHJOB.kind: pytorchjob, TFJOB.kind: tfjob}


def job_resource(job: JobRecord, placement: Placement) -> Obj:
    """The job resource of the kind recorded in the placement."""
    return BUILDERS[placement.kind](job, placement)


def _owner_reference(owner: Obj) -> Obj:
    """A reference to the job resource `owner`: what it owns is deleted with it."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job_network_policy(job: JobRecord, placement: Placement, owner: Obj) -> Obj:
    """The job's own NetworkPolicy, owned by the job resource: its ranks are reached by each
    other and by nothing else (the chart's job policy isolates every rank and sets its egress)."""
    same_job = {"matchLabels": {JOB_LABEL: job.id}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": resource_name(job),
            "namespace": placement.namespace,
            "labels": job_labels(job),
            "ownerReferences": [_owner_reference(owner)],
        },
        "spec": {
            "podSelector": same_job,
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": same_job}]}],
        },
    }


def payload_secret(job: JobRecord, placement: Placement, owner: Obj, payload: bytes) -> Obj:
    """The payload's Secret (pushed variables may hold keys), owned by the job resource `owner`
    and deleted with it; only the job's pods mount it, and the hub's account may create it
    but not read it back."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(job),
            "namespace": placement.namespace,
            "labels": job_labels(job),
            "ownerReferences": [_owner_reference(owner)],
        },
        "data": {
            PAYLOAD_KEY: base64.b64encode(payload).decode(),
            RECORD_KEY: base64.b64encode(bytes.fromhex(placement.record_key)).decode(),
        },
    }


def service_account(namespace: str) -> Obj:
    """The ranks' service account: no token is mounted into their pods."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "automountServiceAccountToken": False,
    }
