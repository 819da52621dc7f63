"""The contract between the jobs service and everything that talks to it: job states,
frameworks, the submit fields, the environment variables a user's server and a job's ranks are
given, and the defaults both sides assume. The jobs service, the hub and the launcher import
these names from here; nothing here imports anything of hubflow."""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    """A job's life: Queued → Pending → Running → Succeeded | Failed | Cancelled."""

    QUEUED = "Queued"
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        """The job has ended and holds nothing."""
        return self in FINISHED_STATES

    @property
    def active(self) -> bool:
        """Started and holding resources (counts towards the concurrent-jobs limit)."""
        return self in (JobState.PENDING, JobState.RUNNING)


FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

#: How a job's ranks are launched: torchrun, TF_CONFIG, or one plain Python process per rank.
FRAMEWORKS = ("pytorch", "tensorflow", "python")

#: The fields of a `POST api/jobs` body.
SUBMIT_FIELDS = (
    "payload",
    "workers",
    "gpus_per_worker",
    "framework",
    "name",
    "server_name",
    "client_key",
)

#: The largest payload a submit may carry (the cloudpickled code and pushed variables).
MAX_PAYLOAD_BYTES = 256 * 2**20

# What a user's server environment holds for the launcher.
JOBS_URL_ENV = "HUBFLOW_JOBS_URL"
WORKSPACE_ENV = "HUBFLOW_WORKSPACE"
PROFILE_ENV = "HUBFLOW_PROFILE"
ACTIVITY_INTERVAL_ENV = "HUBFLOW_ACTIVITY_INTERVAL"

# What a job's ranks are given.
JOB_ID_ENV = "HUBFLOW_JOB_ID"
#: The job's directory (local ranks).
JOB_DIR_ENV = "HUBFLOW_JOB_DIR"
#: The payload file of a rank that runs in a pod.
JOB_PAYLOAD_ENV = "HUBFLOW_JOB_PAYLOAD"
#: The file holding the job's record key (Kubernetes ranks): their framed records carry its MAC.
JOB_RECORD_KEY_ENV = "HUBFLOW_JOB_RECORD_KEY"
#: The GPUs the job holds (local ranks), split among ranks by GPUS_PER_WORKER_ENV.
JOB_GPUS_ENV = "HUBFLOW_JOB_GPUS"
GPUS_PER_WORKER_ENV = "HUBFLOW_GPUS_PER_WORKER"

#: Where a server's workspace is mounted in a pod when its profile does not say.
DEFAULT_MOUNT_PATH = "/home/jovyan"
#: The Kubernetes namespace of users' pods and jobs when the operator does not say.
DEFAULT_NAMESPACE = "hubflow"
