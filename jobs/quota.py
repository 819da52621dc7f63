"""A job's refusals in the API's terms: the per-job limits of the user's quota (profiles/quotas.py
holds the rules), as a 403 naming the request field."""

from __future__ import annotations

from dataclasses import dataclass

from hubflow.jobs.models import JobRequest
from hubflow.profiles import Limit, QuotaError, UserQuota, check_gpus, check_job_start

#: Quota field -> the request field it limits.
_REQUEST_FIELD = {
    "job_workers": "workers",
    "job_gpus": "gpus_per_worker",
    "gpus": "gpus_per_worker",
    "group_gpus": "gpus_per_worker",
}


@dataclass
class Refusal(Exception):
    """A job that may never start as asked: HTTP status, request field, and why in words."""

    status: int
    field: str
    message: str
    quota: str | None = None
    limit: int | None = None
    group: str | None = None

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def to_model(self) -> dict[str, object]:
        model: dict[str, object] = {
            "status": self.status,
            "message": str(self),
            "field": self.field,
        }
        if self.quota:
            model.update(quota=self.quota, limit=self.limit, group=self.group)
        return model


def check_hard_limits(quota: UserQuota, request: JobRequest, new_gpus: int = 0) -> None:
    """Refuse a job over a per-job limit (workers, GPUs), or holding `new_gpus` GPUs of its own
    (on Kubernetes) beyond the user's or a group's GPU quota with nothing else running;
    backends check what they can place."""
    try:
        check_job_start(quota, running_jobs=0, workers=request.workers, gpus=request.total_gpus)
        check_gpus(quota, running_gpus=0, requested_gpus=new_gpus)
    except QuotaError as e:
        raise quota_refusal(quota, e) from None


def quota_refusal(quota: UserQuota, error: QuotaError) -> Refusal:
    """A 403 naming the request field a quota limits, the limit and who granted it."""
    limit = Limit(error.value, error.group) if error.group else getattr(quota, error.limit)
    return Refusal(
        403,
        _REQUEST_FIELD.get(error.limit, error.limit),
        error.message,
        error.limit,
        limit.value,
        limit.granted_by,
    )
