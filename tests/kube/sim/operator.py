"""The training-operator stand-in: PyTorchJob / TFJob (Training Operator v1) and TrainJob
(Trainer v2, torch-distributed runtime) become pods with the environment the operators inject,
and the jobs' conditions follow their pods' phases.

What the real operators do, and what this one does instead:

- PyTorchJob: pods `<job>-master-0`, `<job>-worker-<i>` labelled
  `training.kubeflow.org/{job-name,replica-type,replica-index,job-role}`, a headless Service per
  pod, and in the container named `pytorch`: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK (master 0,
  worker i is i + 1), PET_MASTER_ADDR, PET_MASTER_PORT, PET_NNODES, PET_NPROC_PER_NODE,
  PET_NODE_RANK, PYTHONUNBUFFERED. The real MASTER_ADDR is the master's Service name; the
  simulator has no DNS, so it is the master pod's IP (its own `status.podIP`, a literal IP for the
  workers, which are created once the master has one), and the port is a free one rather than
  23456 because every pod shares the host's network stack.
- TFJob: pods `<job>-worker-<i>` with TF_CONFIG {"cluster": {"worker": [...]}, "task": {"type":
  "worker", "index": i}, "environment": "cloud"}, addresses as the operator writes them
  (`<pod>.<namespace>.svc:2222`; not resolvable here).
- TrainJob: the runtime's `node` pod template with the trainer's image, command, env and
  resourcesPerNode, then the runtimePatches; pods `<job>-node-0-<i>-<suffix>` labelled as
  JobSet's Indexed Job labels them (`batch.kubernetes.io/job-completion-index`), owned by the
  TrainJob itself (no JobSet or Job objects), with PET_NNODES, PET_NPROC_PER_NODE,
  PET_NODE_RANK, PET_MASTER_ADDR (node 0's pod IP), PET_MASTER_PORT.
- Conditions: v1 Created, Running, Restarting, Succeeded (master, or worker 0 of a TFJob),
  Failed (any replica failed: restartPolicy Never, no retries), Suspended; v2 Created, Suspended,
  Complete (every node succeeded), Failed (any node failed). `suspend` holds the pods back; a
  finished job's still-running pods are deleted (v1 cleanPodPolicy Running, JobSet failure);
  v1 ttlSecondsAfterFinished deletes the job.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

from tests.kube.sim.api import Api
from tests.kube.sim.errors import ApiError
from tests.kube.sim.store import Change, now_iso

Obj = dict[str, Any]
log = logging.getLogger(__name__)

KEYS = {
    "kubeflow.org/pytorchjobs": "PyTorchJob",
    "kubeflow.org/tfjobs": "TFJob",
    "trainer.kubeflow.org/trainjobs": "TrainJob",
}
KIND_KEYS = {kind: key for key, kind in KEYS.items()}
V1_PREFIX = "training.kubeflow.org"
TF_PORT = 2222
#: The container the v1 operators set the environment of.
CONTAINERS = {"PyTorchJob": "pytorch", "TFJob": "tensorflow"}
FINISHED = ("Succeeded", "Failed", "Complete")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(container: Obj, values: dict[str, Any]) -> None:
    """Set variables in a container's env (replacing same-named ones), as the operators do."""
    names = set(values)
    env = [e for e in container.get("env", []) if e["name"] not in names]
    for name, value in values.items():
        env.append({"name": name, **(value if isinstance(value, dict) else {"value": str(value)})})
    container["env"] = env


_OWN_IP = {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


class Replica:
    """One pod the operator wants: its name, labels and a function filling its spec."""

    def __init__(self, name: str, rank: int, labels: dict[str, str], build: Callable[[], Obj]):
        self.name, self.rank, self.labels, self.build = name, rank, labels, build


class TrainingOperator:
    """Reconciles Kubeflow job resources on the simulator's loop (listening to the store)."""

    def __init__(self, api: Api) -> None:
        self.api, self.store = api, api.store
        self._queued: set[tuple[str, str, str]] = set()
        self._ports: dict[str, int] = {}
        self._expiring: set[str] = set()
        self.store.listeners.append(self._on_change)

    # -- events ------------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        meta = change.obj["metadata"]
        if change.key in KEYS and change.type != "DELETED":
            self._queue(change.key, meta["namespace"], meta["name"])
        elif change.key == "/pods":
            for ref in meta.get("ownerReferences", []):
                if ref.get("controller") and ref.get("kind") in KIND_KEYS:
                    self._queue(KIND_KEYS[ref["kind"]], meta["namespace"], ref["name"])

    def _queue(self, key: str, namespace: str, name: str) -> None:
        ident = (key, namespace, name)
        if ident not in self._queued:
            self._queued.add(ident)
            asyncio.get_running_loop().call_soon(self._reconcile, ident)

    def _reconcile(self, ident: tuple[str, str, str]) -> None:
        self._queued.discard(ident)
        key, namespace, name = ident
        job = self.store.get(key, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        try:
            self._sync(job)
        except ApiError as error:
            log.warning("training operator: %s %s/%s: %s", job["kind"], namespace, name, error)

    # -- one job -----------------------------------------------------------------------------

    def _sync(self, job: Obj) -> None:
        kind = job["kind"]
        status = copy.deepcopy(job.get("status") or {})
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        if any(conditions.get(t, {}).get("status") == "True" for t in FINISHED):
            self._count_replicas(job, status, self._owned_pods(job))
            self._write_status(job, status)
            self._expire(job)
            return
        self._condition(
            job, status, "Created", "True", "Created", f"{kind} {_name(job)} is created."
        )
        pods = self._owned_pods(job)
        if self._suspended(job):
            for pod in pods.values():
                self._delete("/pods", pod)
            self._condition(job, status, "Suspended", "True", "Suspended", f"{kind} is suspended.")
            self._write_status(job, status)
            return
        if conditions.get("Suspended", {}).get("status") == "True":
            self._condition(job, status, "Suspended", "False", "Resumed", f"{kind} is resumed.")
        if kind != "TrainJob":
            status.setdefault("startTime", now_iso())
        replicas = self._replicas(job, pods)
        for replica in replicas:
            if replica.name not in pods:
                pod = self._create_pod(job, replica)
                if pod is None:
                    break  # the rest wait for the master's address
                pods[replica.name] = pod
        self._update_from_pods(job, status, replicas, pods)
        self._write_status(job, status)

    def _suspended(self, job: Obj) -> bool:
        spec = job["spec"]
        return bool(spec.get("suspend") or spec.get("runPolicy", {}).get("suspend"))

    def _owned_pods(self, job: Obj) -> dict[str, Obj]:
        uid = job["metadata"]["uid"]
        return {
            pod["metadata"]["name"]: pod
            for pod in self.store.objects("/pods", job["metadata"]["namespace"])
            if any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences", []))
        }

    def _port(self, job: Obj) -> int:
        return self._ports.setdefault(job["metadata"]["uid"], _free_port())

    # -- pods of each kind -------------------------------------------------------------------

    def _replicas(self, job: Obj, pods: dict[str, Obj]) -> list[Replica]:
        if job["kind"] == "TrainJob":
            return self._trainjob_replicas(job, pods)
        return self._v1_replicas(job, pods)

    def _v1_replicas(self, job: Obj, pods: dict[str, Obj]) -> list[Replica]:
        name, kind = _name(job), job["kind"]
        specs = job["spec"]["pytorchReplicaSpecs" if kind == "PyTorchJob" else "tfReplicaSpecs"]
        order = [t for t in ("Master", "Chief", "Worker", "PS", "Evaluator") if t in specs]
        entries = [(t, i) for t in order for i in range(int(specs[t].get("replicas", 1)))]
        total = len(entries)
        master = f"{name}-{entries[0][0].lower()}-0"
        master_ip = (pods.get(master) or {}).get("status", {}).get("podIP", "")
        port = self._port(job)
        tf_hosts = {
            t.lower(): [
                f"{name}-{t.lower()}-{i}.{job['metadata']['namespace']}.svc:{TF_PORT}"
                for i in range(int(specs[t].get("replicas", 1)))
            ]
            for t in order
        }
        replicas = []
        for rank, (rtype, index) in enumerate(entries):
            pod_name = f"{name}-{rtype.lower()}-{index}"
            labels = {
                f"{V1_PREFIX}/job-name": name,
                f"{V1_PREFIX}/operator-name": f"{kind.lower()}-controller",
                f"{V1_PREFIX}/replica-type": rtype.lower(),
                f"{V1_PREFIX}/replica-index": str(index),
            }
            if rank == 0:
                labels[f"{V1_PREFIX}/job-role"] = "master"

            def build(rtype: str = rtype, index: int = index, rank: int = rank) -> Obj:
                template = copy.deepcopy(specs[rtype]["template"])
                spec = template["spec"]
                spec["restartPolicy"] = specs[rtype].get("restartPolicy", "Never")
                container = next(
                    (c for c in spec["containers"] if c["name"] == CONTAINERS[kind]),
                    spec["containers"][0],
                )
                if kind == "PyTorchJob":
                    address = _OWN_IP if rank == 0 else master_ip
                    nproc = job["spec"].get("nprocPerNode", "auto")
                    _env(container, {
                        "PYTHONUNBUFFERED": "1", "MASTER_PORT": port, "MASTER_ADDR": address,
                        "WORLD_SIZE": total * (int(nproc) if nproc.isdigit() else 1),
                        "RANK": rank, "PET_MASTER_ADDR": address, "PET_MASTER_PORT": port,
                        "PET_NNODES": total, "PET_NPROC_PER_NODE": nproc, "PET_NODE_RANK": rank,
                    })  # fmt: skip
                else:
                    task = {"type": rtype.lower(), "index": index}
                    config = {"cluster": tf_hosts, "task": task, "environment": "cloud"}
                    _env(container, {"TF_CONFIG": json.dumps(config)})
                return template

            replicas.append(Replica(pod_name, rank, labels, build))
        if job["kind"] == "PyTorchJob" and not master_ip:
            for replica in replicas[1:]:
                replica.build = _not_yet
        return replicas

    def _trainjob_replicas(self, job: Obj, pods: dict[str, Obj]) -> list[Replica]:
        name, spec = _name(job), job["spec"]
        trainer = spec.get("trainer") or {}
        runtime = self._runtime(job)
        nodes = int(trainer.get("numNodes") or runtime["spec"]["mlPolicy"].get("numNodes", 1))
        nproc = int(trainer.get("numProcPerNode") or 1)
        rjob = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]
        port = self._port(job)
        suffix = hashlib.sha256(job["metadata"]["uid"].encode()).hexdigest()[:5]
        names = [f"{name}-{rjob['name']}-0-{i}-{suffix}" for i in range(nodes)]
        master_ip = (pods.get(names[0]) or {}).get("status", {}).get("podIP", "")
        replicas = []
        for index in range(nodes):
            labels = {
                "jobset.sigs.k8s.io/jobset-name": name,
                "jobset.sigs.k8s.io/replicatedjob-name": rjob["name"],
                "jobset.sigs.k8s.io/job-index": "0",
                "batch.kubernetes.io/job-completion-index": str(index),
                "trainer.kubeflow.org/trainjob-name": name,
            }

            def build(index: int = index) -> Obj:
                template = copy.deepcopy(rjob["template"]["spec"]["template"])
                template.setdefault("metadata", {})
                template["metadata"].setdefault("labels", {}).update(
                    rjob["template"].get("metadata", {}).get("labels", {})
                )
                pod = template.setdefault("spec", {})
                pod.setdefault("restartPolicy", "Never")
                container = pod["containers"][0]
                for field in ("image", "command", "args"):
                    if field in trainer:
                        container[field] = trainer[field]
                if "resourcesPerNode" in trainer:
                    container["resources"] = trainer["resourcesPerNode"]
                _env(container, {e["name"]: e.get("value", "") for e in trainer.get("env", [])})
                address = _OWN_IP if index == 0 else master_ip
                _env(container, {
                    "PET_NNODES": nodes, "PET_NPROC_PER_NODE": nproc, "PET_NODE_RANK": index,
                    "PET_MASTER_ADDR": address, "PET_MASTER_PORT": port,
                })  # fmt: skip
                _apply_patches(template, rjob["name"], spec.get("runtimePatches", []))
                template["metadata"].setdefault("annotations", {})[
                    "batch.kubernetes.io/job-completion-index"
                ] = str(index)
                return template

            replicas.append(Replica(names[index], index, labels, build))
        if not master_ip:
            for replica in replicas[1:]:
                replica.build = _not_yet
        return replicas

    def _runtime(self, job: Obj) -> Obj:
        ref = job["spec"]["runtimeRef"]
        if ref.get("kind", "ClusterTrainingRuntime") == "ClusterTrainingRuntime":
            found = self.store.get("trainer.kubeflow.org/clustertrainingruntimes", "", ref["name"])
        else:
            found = self.store.get(
                "trainer.kubeflow.org/trainingruntimes", job["metadata"]["namespace"], ref["name"]
            )
        if found is None:
            raise ApiError(404, "NotFound", f"training runtime {ref['name']!r} not found")
        return found

    def _create_pod(self, job: Obj, replica: Replica) -> Obj | None:
        template = replica.build()
        if not template:
            return None
        meta = template.get("metadata") or {}
        labels = {**meta.get("labels", {}), **replica.labels}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": replica.name,
                "namespace": job["metadata"]["namespace"],
                "labels": labels,
                "annotations": meta.get("annotations", {}),
                "ownerReferences": [_owner(job)],
            },
            "spec": template["spec"],
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        created = self.api.create(
            self.api.registry.by_key("/pods"), pod["metadata"]["namespace"], pod
        )
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": replica.name[:63],
                "namespace": pod["metadata"]["namespace"],
                "labels": replica.labels,
                "ownerReferences": [_owner(job)],
            },
            "spec": {
                "clusterIP": "None",
                "selector": replica.labels,
                "ports": [{"name": "job-port", "port": self._port(job)}],
            },
        }
        try:
            self.api.create(
                self.api.registry.by_key("/services"), service["metadata"]["namespace"], service
            )
        except ApiError as error:
            if error.code != 409:
                raise
        return created

    # -- status ------------------------------------------------------------------------------

    def _update_from_pods(
        self, job: Obj, status: Obj, replicas: list[Replica], pods: dict[str, Obj]
    ) -> None:
        kind, name = job["kind"], _name(job)
        phases = {r.rank: (pods.get(r.name) or {}).get("status", {}).get("phase") for r in replicas}
        restarts = sum(
            c.get("restartCount", 0)
            for pod in pods.values()
            for c in pod.get("status", {}).get("containerStatuses", [])
        )
        failed = sorted(rank for rank, phase in phases.items() if phase == "Failed")
        if kind == "TrainJob":
            succeeded = all(phase == "Succeeded" for phase in phases.values())
        else:
            succeeded = phases.get(0) == "Succeeded"
        self._count_replicas(job, status, pods)
        if failed:
            message = (
                f"{kind} {name} is failed because rank {failed[0]} failed."
                if kind == "TrainJob"
                else f"{kind} {name} is failed because {len(failed)} replica(s) failed."
            )
            self._finish(
                job,
                status,
                pods,
                "Failed",
                f"{kind}Failed" if kind != "TrainJob" else "FailedJobs",
                message,
            )
        elif succeeded:
            if kind == "TrainJob":
                self._finish(
                    job,
                    status,
                    pods,
                    "Complete",
                    "JobSetCompleted",
                    "jobset completed successfully",
                )
            else:
                self._finish(
                    job,
                    status,
                    pods,
                    "Succeeded",
                    f"{kind}Succeeded",
                    f"{kind} {name} is successfully completed.",
                )
        elif kind != "TrainJob" and any(p == "Running" for p in phases.values()):
            if restarts:
                self._condition(
                    job,
                    status,
                    "Restarting",
                    "True",
                    f"{kind}Restarting",
                    f"{kind} {name} is restarting because a replica restarted.",
                )
            self._condition(
                job, status, "Running", "True", f"{kind}Running", f"{kind} {name} is running."
            )

    def _finish(
        self, job: Obj, status: Obj, pods: dict[str, Obj], kind: str, reason: str, message: str
    ) -> None:
        if job["kind"] != "TrainJob":
            self._condition(job, status, "Running", "False", reason, message)
            status["completionTime"] = now_iso()
        self._condition(job, status, kind, "True", reason, message)
        if job["kind"] == "TrainJob":
            clean = "Running" if kind == "Failed" else "None"  # a failed JobSet stops its pods
        else:
            clean = job["spec"].get("runPolicy", {}).get("cleanPodPolicy", "None")
        for pod in pods.values():
            done = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
            if clean == "All" or (clean == "Running" and not done):
                self._delete("/pods", pod)

    @staticmethod
    def _count_replicas(job: Obj, status: Obj, pods: dict[str, Obj]) -> None:
        """v1 replicaStatuses per replica type, or v2 jobsStatus of the `node` job."""
        counts: dict[str, dict[str, int]] = {}
        for pod in pods.values():
            labels = pod["metadata"].get("labels", {})
            group = labels.get(f"{V1_PREFIX}/replica-type", "node").capitalize()
            entry = counts.setdefault(group, {"active": 0, "ready": 0, "succeeded": 0, "failed": 0})
            phase = pod.get("status", {}).get("phase")
            if phase in ("Pending", "Running"):
                entry["active"] += 1
                entry["ready"] += phase == "Running"
            elif phase in ("Succeeded", "Failed"):
                entry[phase.lower()] += 1
        if job["kind"] == "TrainJob":
            node = counts.get("Node", {"active": 0, "ready": 0, "succeeded": 0, "failed": 0})
            status["jobsStatus"] = [{"name": "node", **node, "suspended": 0}]
        else:
            status["replicaStatuses"] = {
                group: {k: v for k, v in entry.items() if k != "ready"}
                for group, entry in counts.items()
            }

    def _condition(
        self, job: Obj, status: Obj, type_: str, value: str, reason: str, message: str
    ) -> None:
        conditions = status.setdefault("conditions", [])
        stamp = now_iso()
        entry: Obj = {"type": type_, "status": value, "reason": reason, "message": message}
        if job["kind"] == "TrainJob":
            entry["observedGeneration"] = job["metadata"].get("generation", 1)
        else:
            entry["lastUpdateTime"] = stamp
        for i, old in enumerate(conditions):
            if old["type"] == type_:
                if (old["status"], old.get("reason")) == (value, reason):
                    return
                entry["lastTransitionTime"] = (
                    stamp if old["status"] != value else old["lastTransitionTime"]
                )
                conditions[i] = entry
                return
        if value == "True" or type_ == "Suspended":
            entry["lastTransitionTime"] = stamp
            conditions.append(entry)

    def _write_status(self, job: Obj, status: Obj) -> None:
        if status == (job.get("status") or {}):
            return
        rtype = self.api.registry.by_key(KIND_KEYS[job["kind"]])
        body = {**job, "status": status}
        self.api.replace(
            rtype, job["metadata"]["namespace"], _name(job), body, subresource="status"
        )

    def _delete(self, key: str, obj: Obj) -> None:
        meta = obj["metadata"]
        try:
            self.api.delete(self.api.registry.by_key(key), meta["namespace"], meta["name"])
        except ApiError as error:
            if error.code != 404:
                raise

    def _expire(self, job: Obj) -> None:
        """v1 ttlSecondsAfterFinished: delete the finished job (and so its pods) after it."""
        ttl = job["spec"].get("runPolicy", {}).get("ttlSecondsAfterFinished")
        uid = job["metadata"]["uid"]
        if ttl is None or uid in self._expiring:
            return
        self._expiring.add(uid)
        asyncio.get_running_loop().call_later(int(ttl), self._delete_quietly, job)

    def _delete_quietly(self, job: Obj) -> None:
        current = self.store.get(KIND_KEYS[job["kind"]], job["metadata"]["namespace"], _name(job))
        if current is not None and current["metadata"]["uid"] == job["metadata"]["uid"]:
            self._delete(KIND_KEYS[job["kind"]], current)


def _name(job: Obj) -> str:
    return str(job["metadata"]["name"])


def _owner(job: Obj) -> Obj:
    meta = job["metadata"]
    return {
        "apiVersion": job["apiVersion"],
        "kind": job["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _not_yet() -> Obj:
    """A replica that waits for the master's pod IP."""
    return {}


def _apply_patches(template: Obj, rjob: str, patches: list[Obj]) -> None:
    """Trainer v2 runtimePatches on one replicated job's pod template: labels, annotations,
    volumes, scheduling, service account, and per-container env and volume mounts."""
    for patch in patches:
        spec = (patch.get("trainingRuntimeSpec") or {}).get("template", {}).get("spec", {})
        for entry in spec.get("replicatedJobs", []):
            if entry["name"] != rjob:
                continue
            pod_patch = entry.get("template", {}).get("spec", {}).get("template", {})
            meta = pod_patch.get("metadata", {})
            for field in ("labels", "annotations"):
                if meta.get(field):
                    template["metadata"].setdefault(field, {}).update(meta[field])
            pod_spec = pod_patch.get("spec", {})
            target = template["spec"]
            for field in ("volumes", "tolerations", "imagePullSecrets", "schedulingGates"):
                if field in pod_spec:
                    target[field] = [*target.get(field, []), *pod_spec[field]]
            if "nodeSelector" in pod_spec:
                target["nodeSelector"] = {
                    **target.get("nodeSelector", {}),
                    **pod_spec["nodeSelector"],
                }
            for field in (
                "serviceAccountName",
                "affinity",
                "securityContext",
                "terminationGracePeriodSeconds",
            ):
                if field in pod_spec:
                    target[field] = pod_spec[field]
            for container_patch in pod_spec.get("containers", []):
                for container in target["containers"]:
                    if container["name"] == container_patch["name"]:
                        container["volumeMounts"] = [
                            *container.get("volumeMounts", []),
                            *container_patch.get("volumeMounts", []),
                        ]
                        _env(
                            container,
                            {e["name"]: e.get("value", "") for e in container_patch.get("env", [])},
                        )
