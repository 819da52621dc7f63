"""Quotas: per-user limits (the most generous of `default` and the user's groups), group totals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import Problem, QuotaError

USER_FIELDS = ("servers", "gpus", "jobs", "job_workers", "job_gpus")
GROUP_FIELDS = ("group_servers", "group_gpus")
DEFAULT = "default"
Quotas = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Limit:
    """One limit: its value (None = unlimited) and who granted it (a group, or "default")."""

    value: int | None = None
    granted_by: str | None = None

    def describe(self) -> str:
        """ "the limit for group 'students' is 2", or "the default limit is 1"."""
        if self.granted_by == DEFAULT:
            return f"the default limit is {self.value}"
        return f"the limit for group '{self.granted_by}' is {self.value}"


@dataclass(frozen=True)
class UserQuota:
    """A user's effective limits; group totals of each of their groups that sets one."""

    servers: Limit = field(default_factory=Limit)
    gpus: Limit = field(default_factory=Limit)
    jobs: Limit = field(default_factory=Limit)
    job_workers: Limit = field(default_factory=Limit)
    job_gpus: Limit = field(default_factory=Limit)
    group_servers: Mapping[str, int] = field(default_factory=dict)
    group_gpus: Mapping[str, int] = field(default_factory=dict)


def check_quotas(quotas: Quotas) -> None:
    """What the schema cannot say: group totals belong to named groups, not to `default`."""
    for name in GROUP_FIELDS:
        if name in quotas.get(DEFAULT, {}):
            raise Problem((DEFAULT, name), "group totals need a named group, not 'default'")


def effective_quota(quotas: Quotas, groups: Iterable[str]) -> UserQuota:
    """The user's limits: for each field, the most generous value among `default` and their
    groups that set it; a field nobody sets is unlimited."""
    groups = [group for group in dict.fromkeys(groups) if group != DEFAULT]
    limits: dict[str, Limit] = {}
    for name in USER_FIELDS:
        granted = [
            Limit(quotas[source][name], source)
            for source in (DEFAULT, *groups)
            if name in quotas.get(source, {})
        ]
        # max() keeps the first of equal values: `default`, then groups in the order given
        limits[name] = max(granted, key=lambda limit: limit.value or 0, default=Limit())
    totals = {
        name: {g: quotas[g][name] for g in groups if name in quotas.get(g, {})}
        for name in GROUP_FIELDS
    }
    return UserQuota(
        **limits, group_servers=totals["group_servers"], group_gpus=totals["group_gpus"]
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def check_server_start(
    quota: UserQuota,
    *,
    running_servers: int,
    running_gpus: int,
    requested_gpus: int = 0,
    group_servers: Mapping[str, int] | None = None,
    group_gpus: Mapping[str, int] | None = None,
) -> None:
    """Raise QuotaError if one more server holding requested_gpus would exceed a limit.

    running_* count the user's own servers; group_servers/group_gpus give, per group, the
    servers and GPUs all members hold now (a server counts towards each group of its user).
    """
    if quota.servers.value is not None and running_servers + 1 > quota.servers.value:
        raise QuotaError(
            "servers",
            f"quota: you already run {_plural(running_servers, 'server')}, "
            f"{quota.servers.describe()}",
        )
    if quota.gpus.value is not None and running_gpus + requested_gpus > quota.gpus.value:
        held = f"you already hold {_plural(running_gpus, 'GPU')} and ask for {requested_gpus} more"
        asked = held if running_gpus else f"you ask for {_plural(requested_gpus, 'GPU')}"
        raise QuotaError("gpus", f"quota: {asked}, {quota.gpus.describe()}")
    for group, limit in quota.group_servers.items():
        running = (group_servers or {}).get(group, 0)
        if running + 1 > limit:
            raise QuotaError(
                "group_servers",
                f"quota: group '{group}' already runs {_plural(running, 'server')}, "
                f"the group's limit is {limit}",
            )
    for group, limit in quota.group_gpus.items():
        held_by_group = (group_gpus or {}).get(group, 0)
        if requested_gpus and held_by_group + requested_gpus > limit:
            raise QuotaError(
                "group_gpus",
                f"quota: group '{group}' already holds {_plural(held_by_group, 'GPU')} and you ask "
                f"for {requested_gpus} more, the group's limit is {limit}",
            )


def check_job_start(quota: UserQuota, *, running_jobs: int, workers: int, gpus: int = 0) -> None:
    """Raise QuotaError if one more job with `workers` workers and `gpus` GPUs in total would
    exceed a limit."""
    if quota.jobs.value is not None and running_jobs + 1 > quota.jobs.value:
        raise QuotaError(
            "jobs",
            f"quota: you already run {_plural(running_jobs, 'job')}, {quota.jobs.describe()}",
        )
    if quota.job_workers.value is not None and workers > quota.job_workers.value:
        raise QuotaError(
            "job_workers",
            f"quota: you ask for {_plural(workers, 'worker')} in one job, "
            f"{quota.job_workers.describe()}",
        )
    if quota.job_gpus.value is not None and gpus > quota.job_gpus.value:
        raise QuotaError(
            "job_gpus",
            f"quota: you ask for {_plural(gpus, 'GPU')} in one job, {quota.job_gpus.describe()}",
        )
