"""The Kubeflow backend: each job is a TrainJob, PyTorchJob or TFJob in the user's namespace,
with its payload in a Secret it owns; state from the resource's conditions and its pods;
logs, results and errors from the pods' logs (see logs.py); cancel deletes the resource."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from hubflow.jobs.backend import JobFiles, Outcome, StartError
from hubflow.jobs.kubeflow.crdschema import schema_errors
from hubflow.jobs.kubeflow.discovery import KINDS, TRAINJOB, Discovery, NoTrainingAPI
from hubflow.jobs.kubeflow.logs import JobLogs
from hubflow.jobs.kubeflow.manifests import (
    CONTAINER_NAMES,
    JOB_LABEL,
    MANAGED_BY,
    SECRET_PAYLOAD_BYTES,
    SERVICE_ACCOUNT,
    Placement,
    job_network_policy,
    job_resource,
    payload_secret,
    placement_for,
    resource_name,
    service_account,
)
from hubflow.jobs.kubeflow.status import (
    exit_codes,
    pending_reason,
    ranks_settled,
    resource_state,
)
from hubflow.jobs.models import JobRequest
from hubflow.jobs.quota import Refusal
from hubflow.jobs.store import JobRecord
from hubflow.launcher.contract import JobState
from hubflow.profiles.server_record import ServerRecord
from hubflow.spawner.kube_retry import api_error_message

log = logging.getLogger(__name__)
#: How often finished TrainJobs are looked at for their TTL (seconds).
EXPIRY_EVERY_S = 60.0


def _timestamp(text: str) -> float:
    """An RFC 3339 time of the API server ("2026-01-02T03:04:05Z") as seconds since the epoch."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


Obj = dict[str, Any]

#: How long a finished job waits for its ranks' logs (and so its result) to be read to the end.
LOG_DRAIN_S = 30.0
#: How long the other ranks of a failed job get to end on their own (and report their exit
#: codes) before those still running or waiting are stopped.
STOP_GRACE_S = 5.0


class KubeflowBackend(JobFiles):
    """Runs jobs as Kubeflow training resources through the API server `api` points at."""

    max_payload_bytes = SECRET_PAYLOAD_BYTES
    holds_gpus = True  # ranks are pods with GPUs of their own

    def __init__(
        self,
        data_dir: Path,
        api: kubernetes.client.ApiClient,
        namespace: str,
        kubeflow_api: str = "auto",
        ttl_seconds: int = 3600,
    ) -> None:
        super().__init__(data_dir)
        self.discovery = Discovery(api, kubeflow_api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.networking = kubernetes.client.NetworkingV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.namespace = namespace
        self.ttl_seconds = ttl_seconds
        self._logs: dict[str, JobLogs] = {}
        self._ended: dict[str, float] = {}
        self._exit_codes: dict[str, dict[str, int]] = {}
        self._stopped: set[str] = set()
        # TrainJob has no TTL field: finished ones are deleted by their finish time as the API
        # server recorded it, looked at now and every EXPIRY_EVERY_S, so a restart loses none.
        self._expiry = threading.Thread(target=self._expire_loop, daemon=True, name="trainjob-ttl")
        self._expiry.start()

    # -- submission ------------------------------------------------------------------------

    def admit(self, request: JobRequest, server: ServerRecord) -> dict[str, Any]:
        """Pick the job kind the cluster serves and fix the placement from the user's server."""
        profile_gpus = int(server.profile.get("gpu_count") or 0)
        if request.gpus_per_worker > profile_gpus:
            raise Refusal(
                422,
                "gpus_per_worker",
                f"{request.gpus_per_worker} GPU(s) per worker: the server's profile "
                f"'{server.profile.get('slug', '')}' grants {profile_gpus} per pod",
            )
        if not server.pvc_name:
            raise Refusal(409, "server_name", "the server has no workspace volume claim")
        if not server.profile.get("image"):
            raise Refusal(409, "server_name", "the server's profile names no image")
        try:
            served = self.discovery.kind_for(request.framework)
        except NoTrainingAPI as e:
            raise Refusal(503, "framework", str(e)) from None
        except ApiException as e:
            raise Refusal(
                503, "framework", f"cannot ask the cluster: {api_error_message(e)}"
            ) from None
        placement = placement_for(
            served.job_kind.kind,
            server,
            request.gpus_per_worker,
            self.namespace,
            self.ttl_seconds,
        )
        # The key the ranks' records are authenticated with, kept with the job.
        return dataclasses.replace(placement, record_key=secrets.token_hex(32)).to_dict()

    def launch(self, job: JobRecord) -> dict[str, Any]:
        """Create the job resource suspended, then its payload Secret and NetworkPolicy (owned by
        it), then let it run (unless Kueue admits it); on any failure nothing is left behind."""
        placement = Placement.from_dict(job.spec)
        job_kind = KINDS[placement.kind]
        served = self.discovery.served().get(placement.kind)
        if served is None:
            raise StartError(f"the cluster no longer serves {job_kind.api_version} {job_kind.kind}")
        body = job_resource(job, placement)
        problems = schema_errors(body, served.schema)
        if problems:
            raise StartError(f"{job_kind.kind} does not match its CRD: {'; '.join(problems)}")
        payload = self.channel(job.id).read_payload()
        try:
            self._ensure_service_account(placement.namespace)
            owner: Obj = self.custom.create_namespaced_custom_object(  # type: ignore[assignment]
                job_kind.group, job_kind.version, placement.namespace, job_kind.plural, body
            )
        except ApiException as e:
            raise StartError(f"creating {job_kind.kind}: {api_error_message(e)}") from None
        try:
            secret: Any = payload_secret(job, placement, owner, payload)  # a dict will do
            self.core.create_namespaced_secret(placement.namespace, secret)
            policy: Any = job_network_policy(job, placement, owner)
            self.networking.create_namespaced_network_policy(placement.namespace, policy)
            if not placement.queue:
                self._patch(job, {"suspend": False})
        except BaseException as e:
            self._delete(job)
            if isinstance(e, ApiException):
                raise StartError(f"starting {job_kind.kind}: {api_error_message(e)}") from None
            raise
        log.info("Created %s %s/%s", job_kind.kind, placement.namespace, resource_name(job))
        return {}

    def adopt(self, job: JobRecord) -> dict[str, Any] | None:
        """Nothing to record if the job's resource exists (it is followed from now on); None if
        it was never created."""
        try:
            self.custom.get_namespaced_custom_object(*self._resource(job))
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return {}

    def _ensure_service_account(self, namespace: str) -> None:
        """The ranks' account, made without a token; one that mounts a token is refused (a
        TrainJob's pods take the account's setting)."""
        try:
            account: Any = service_account(namespace)  # the client takes a dict as well
            self.core.create_namespaced_service_account(namespace, account)
        except ApiException as e:
            if e.status != 409:
                raise
            found: Any = self.core.read_namespaced_service_account(SERVICE_ACCOUNT, namespace)
            if found.automount_service_account_token is not False:
                raise StartError(
                    f"the service account {namespace}/{SERVICE_ACCOUNT} mounts an API token into"
                    " pods: set its automountServiceAccountToken to false"
                ) from None

    @staticmethod
    def _resource(job: JobRecord) -> tuple[str, str, str, str, str]:
        """Group, version, namespace, plural and name of the job's resource, as the custom
        objects API takes them."""
        placement = Placement.from_dict(job.spec)
        job_kind = KINDS[placement.kind]
        return (
            job_kind.group,
            job_kind.version,
            placement.namespace,
            job_kind.plural,
            resource_name(job),
        )

    def _patch(self, job: JobRecord, spec: dict[str, Any]) -> None:
        if KINDS[Placement.from_dict(job.spec).kind] is not TRAINJOB:
            spec = {"runPolicy": spec}
        self.custom.patch_namespaced_custom_object(*self._resource(job), {"spec": spec})

    def _delete(self, job: JobRecord) -> None:
        """Delete the job resource; its pods and payload Secret follow by garbage collection."""
        try:
            self.custom.delete_namespaced_custom_object(
                *self._resource(job),
                body=kubernetes.client.V1DeleteOptions(propagation_policy="Background"),
            )
        except ApiException as e:
            if e.status != 404:
                raise

    # -- following -------------------------------------------------------------------------

    def _pods(self, job: JobRecord) -> list[dict[str, Any]]:
        placement = Placement.from_dict(job.spec)
        response: Any = self.core.list_namespaced_pod(
            placement.namespace, label_selector=f"{JOB_LABEL}={job.id}", _preload_content=False
        )
        return list(json.loads(response.data)["items"])

    def _job_logs(self, job: JobRecord) -> JobLogs:
        logs = self._logs.get(job.id)
        if logs is None:
            placement = Placement.from_dict(job.spec)
            logs = JobLogs(
                self.core,
                placement.namespace,
                CONTAINER_NAMES[placement.kind],
                self.channel(job.id),
                bytes.fromhex(placement.record_key),
            )
            self._logs[job.id] = logs
        return logs

    def poll(self, job: JobRecord) -> Outcome:
        """The job's state from its resource and pods; a finished job is reported once its
        ranks' logs (with the result and errors they carry) have been read to the end."""
        placement = Placement.from_dict(job.spec)
        job_kind = KINDS[placement.kind]
        try:
            obj: Obj = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
                job_kind.group,
                job_kind.version,
                placement.namespace,
                job_kind.plural,
                resource_name(job),
            )
        except ApiException as e:
            if e.status != 404:
                raise
            self._forget(job)
            return Outcome(
                JobState.FAILED,
                error={"message": f"the {job_kind.kind} {resource_name(job)} was deleted"},
            )
        pods = self._pods(job)
        logs = self._job_logs(job)
        logs.update(pods)
        state, message = resource_state(obj, pods)
        if not state.finished:
            suspended = bool(
                obj["spec"].get("suspend", obj["spec"].get("runPolicy", {}).get("suspend"))
            )
            reason = pending_reason(job.workers, pods, suspended, placement.queue)
            return Outcome(state, reason=reason)
        now = time.monotonic()
        ended = self._ended.setdefault(job.id, now)
        codes = self._exit_codes.setdefault(job.id, {})
        codes.update(exit_codes(pods))
        if state is JobState.FAILED and job.id not in self._stopped and now - ended >= STOP_GRACE_S:
            self._stop_unfinished_pods(job)
            self._stopped.add(job.id)
        every_rank = job.workers if state is JobState.SUCCEEDED else None
        drained = logs.finished(every_rank) and ranks_settled(pods)
        if not drained and now - ended < LOG_DRAIN_S:
            return Outcome(JobState.RUNNING, reason="reading the ranks' logs")
        self._forget(job)
        error = self.channel(job.id).first_error()
        if state is JobState.SUCCEEDED and error is None:
            return Outcome(JobState.SUCCEEDED, exit_codes=codes)
        if error is None:
            error = {"message": message or f"{job_kind.kind} failed", "traceback": ""}
        rank = error.pop("rank", None)
        return Outcome(JobState.FAILED, exit_codes=codes, failing_rank=rank, error=error)

    def _stop_unfinished_pods(self, job: JobRecord) -> None:
        """The ranks of a failed job that still run (or wait to) would wait for the failed one
        forever; finished pods stay, with their logs, until the job's TTL."""
        placement = Placement.from_dict(job.spec)
        self.core.delete_collection_namespaced_pod(
            placement.namespace,
            label_selector=f"{JOB_LABEL}={job.id}",
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
        )

    def _forget(self, job: JobRecord) -> None:
        logs = self._logs.pop(job.id, None)
        if logs is not None:
            logs.stop()
        self._ended.pop(job.id, None)
        self._exit_codes.pop(job.id, None)
        self._stopped.discard(job.id)

    def _expire_loop(self) -> None:
        while True:
            try:
                self.expire_trainjobs()
            except Exception as e:  # noqa: BLE001 (a later round retries)
                log.debug("Expiring finished TrainJobs: %s", e)
            time.sleep(EXPIRY_EVERY_S)

    def expire_trainjobs(self, now: float | None = None) -> list[str]:
        """Delete hubflow's TrainJobs in the namespace that finished `ttl_seconds` ago or more
        (Trainer v2's TrainJob has no TTL field; PyTorchJob/TFJob have ttlSecondsAfterFinished).
        The finish time is the Complete/Failed condition's, so it survives a restart of this
        service. Returns the names deleted."""
        now = time.time() if now is None else now
        selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
        try:
            listed: Any = self.custom.list_namespaced_custom_object(
                TRAINJOB.group, TRAINJOB.version, self.namespace, TRAINJOB.plural,
                label_selector=selector,
            )  # fmt: skip
        except ApiException as e:
            if e.status == 404:  # Trainer not installed
                return []
            raise
        deleted = []
        for obj in listed.get("items", []):
            ended = [
                c.get("lastTransitionTime", "")
                for c in obj.get("status", {}).get("conditions", [])
                if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            ]
            if not ended or _timestamp(ended[0]) + self.ttl_seconds > now:
                continue
            name = obj["metadata"]["name"]
            try:
                self.custom.delete_namespaced_custom_object(
                    TRAINJOB.group, TRAINJOB.version, self.namespace, TRAINJOB.plural, name,
                    propagation_policy="Background",
                )  # fmt: skip
                deleted.append(name)
            except ApiException as e:
                if e.status != 404:
                    raise
        return deleted

    async def cancel(self, job: JobRecord) -> None:
        """Delete the job resource: its pods and payload Secret go with it."""
        self._forget(job)
        if job.spec:
            self._delete(job)
