"""Which Kubeflow training API the cluster serves: Trainer v2 `TrainJob` (with hubflow's
`hubflow-torch-distributed` ClusterTrainingRuntime, which the chart installs, and a Trainer recent
enough to take hubflow's TrainJob) or Training Operator v1 `PyTorchJob` / `TFJob`; an admin may
force one. The CRD's schema comes along, to check every job object before it is sent."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from hubflow.hub.settings import KUBEFLOW_APIS

#: The ClusterTrainingRuntime a TrainJob refers to: hubflow's own (helm/hubflow's
#: trainer-runtime.yaml), where a failing rank fails the job once. The stock `torch-distributed`
#: restarts failed pods (JobSet defaults them to OnFailure, the Job's backoffLimit is 6).
TORCH_RUNTIME = "hubflow-torch-distributed"
#: The TrainJob field hubflow's TrainJobs need: Trainer v2.0 and v2.1 do not have it and refuse
#: such a TrainJob (their CRD has `podSpecOverrides` instead).
TRAINJOB_NEEDS = "runtimePatches"
#: How long one look at the cluster's APIs is trusted (an operator installed later is found).
DISCOVERY_TTL_S = 30.0


@dataclass(frozen=True)
class JobKind:
    """A Kubeflow job resource type."""

    kind: str
    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


TRAINJOB = JobKind("TrainJob", "trainer.kubeflow.org", "v1alpha1", "trainjobs")
PYTORCHJOB = JobKind("PyTorchJob", "kubeflow.org", "v1", "pytorchjobs")
TFJOB = JobKind("TFJob", "kubeflow.org", "v1", "tfjobs")
KINDS = {k.kind: k for k in (TRAINJOB, PYTORCHJOB, TFJOB)}


def takes_hubflow_trainjob(schema: dict[str, Any]) -> bool:
    """Whether a TrainJob CRD schema has what hubflow's TrainJobs use (Trainer v2.2 or later)."""
    spec = schema.get("properties", {}).get("spec", {}).get("properties", {})
    return TRAINJOB_NEEDS in spec


class NoTrainingAPI(Exception):
    """The cluster serves no Kubeflow API that can run this job; the message says what is missing."""


@dataclass(frozen=True)
class ServedKind:
    """A job kind the API server serves, with its CRD's openAPIV3Schema."""

    job_kind: JobKind
    schema: dict[str, Any]


class Discovery:
    """Looks at the API server's groups and the Kubeflow CRDs, at most every DISCOVERY_TTL_S."""

    def __init__(self, api: kubernetes.client.ApiClient, force: str = "auto") -> None:
        if force not in KUBEFLOW_APIS:
            raise ValueError(f"kubeflow API {force!r}: must be one of {', '.join(KUBEFLOW_APIS)}")
        self.api = api
        self.force = force
        self._lock = threading.Lock()
        self._served: dict[str, ServedKind] = {}
        self._missing_runtime = False
        self._old_trainer = False
        self._checked = 0.0

    def served(self) -> dict[str, ServedKind]:
        """Kind name -> ServedKind for each Kubeflow job kind the cluster serves now."""
        with self._lock:
            if time.monotonic() - self._checked > DISCOVERY_TTL_S:
                self._served, self._missing_runtime, self._old_trainer = self._look()
                self._checked = time.monotonic()
            return dict(self._served)

    def _look(self) -> tuple[dict[str, ServedKind], bool, bool]:
        groups = kubernetes.client.ApisApi(self.api).get_api_versions().groups or []
        versions = {(g.name, v.version) for g in groups for v in g.versions}
        served = {}
        for job_kind in KINDS.values():
            if (job_kind.group, job_kind.version) not in versions:
                continue
            schema = self._crd_schema(job_kind)
            if schema is not None:
                served[job_kind.kind] = ServedKind(job_kind, schema)
        old_trainer = TRAINJOB.kind in served and not takes_hubflow_trainjob(
            served[TRAINJOB.kind].schema
        )
        if old_trainer:
            del served[TRAINJOB.kind]
        missing_runtime = TRAINJOB.kind in served and not self._has_torch_runtime()
        if missing_runtime:
            del served[TRAINJOB.kind]
        return served, missing_runtime, old_trainer

    def _crd_schema(self, job_kind: JobKind) -> dict[str, Any] | None:
        extensions = kubernetes.client.ApiextensionsV1Api(self.api)
        try:
            response: Any = extensions.read_custom_resource_definition(
                job_kind.crd_name, _preload_content=False
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        crd = json.loads(response.data)
        for version in crd["spec"]["versions"]:
            if version["name"] == job_kind.version and version.get("served"):
                return dict(version["schema"]["openAPIV3Schema"])
        return None

    def _has_torch_runtime(self) -> bool:
        custom = kubernetes.client.CustomObjectsApi(self.api)
        try:
            custom.get_cluster_custom_object(
                TRAINJOB.group, TRAINJOB.version, "clustertrainingruntimes", TORCH_RUNTIME
            )
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def kind_for(self, framework: str) -> ServedKind:
        """The kind to run a `framework` job as; NoTrainingAPI says why none can."""
        served = self.served()
        if framework == "tensorflow":
            if self.force == "trainjob":
                raise NoTrainingAPI(
                    "TensorFlow jobs need the Training Operator's TFJob (kubeflow.org/v1): "
                    "Kubeflow Trainer has no TensorFlow runtime, and this hub is set to TrainJob"
                )
            return self._require(served, TFJOB)
        if self.force == "v1":
            return self._require(served, PYTORCHJOB)
        if TRAINJOB.kind in served:
            return served[TRAINJOB.kind]
        if self.force == "trainjob" or PYTORCHJOB.kind not in served:
            runtime = (
                f" (the CRD is there but ClusterTrainingRuntime {TORCH_RUNTIME!r} is not)"
                if self._missing_runtime
                else f" (the installed Trainer is older than v2.2: its TrainJob has no {TRAINJOB_NEEDS})"
                if self._old_trainer
                else ""
            )
            if self.force == "trainjob":
                raise NoTrainingAPI(
                    f"this cluster does not serve trainer.kubeflow.org/v1alpha1 TrainJob{runtime}"
                    ", and this hub is set to TrainJob: install Kubeflow Trainer"
                )
            raise NoTrainingAPI(
                f"this cluster serves neither trainer.kubeflow.org/v1alpha1 TrainJob{runtime}"
                " nor kubeflow.org/v1 PyTorchJob: install Kubeflow Trainer or the Kubeflow "
                "Training Operator"
            )
        return served[PYTORCHJOB.kind]

    def _require(self, served: dict[str, ServedKind], job_kind: JobKind) -> ServedKind:
        if job_kind.kind not in served:
            raise NoTrainingAPI(
                f"this cluster does not serve {job_kind.api_version} {job_kind.kind}: "
                "install the Kubeflow Training Operator"
            )
        return served[job_kind.kind]
