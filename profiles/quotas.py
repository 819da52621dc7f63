"""Quotas: per-user limits (the most generous of `default` and the user's groups), group totals,
and what users and groups hold now. The one quota module: the spawners (a server's start), the
jobs service (a job's admission and its place in the queue) and warm pools all check here.

A job's GPUs count against the same `gpus` and `group_gpus` as servers' wherever the job holds
GPUs of its own (its ranks' pods on Kubernetes); a local job's ranks share its server's GPUs,
which the server already counts.
"""

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


@dataclass(frozen=True)
class Holding:
    """A running server or an active job: whose it is, that user's groups, and the GPUs it
    holds of its own (a server's; a Kubernetes job's ranks'; 0 for a local job)."""

    user: str
    groups: frozenset[str] = frozenset()
    gpus: int = 0
    server: bool = True


@dataclass(frozen=True)
class Usage:
    """What one user holds now (servers, jobs, GPUs of both) and, per group of theirs, what all
    members hold (a server or job counts towards each group of its user)."""

    servers: int = 0
    jobs: int = 0
    gpus: int = 0
    group_servers: Mapping[str, int] = field(default_factory=dict)
    group_gpus: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, holdings: Iterable[Holding], user: str, groups: Iterable[str]) -> Usage:
        """Sum `holdings` for `user` and for each of `groups`."""
        mine = set(groups)
        servers = jobs = gpus = 0
        group_servers: dict[str, int] = {}
        group_gpus: dict[str, int] = {}
        for held in holdings:
            if held.user == user:
                servers += held.server
                jobs += not held.server
                gpus += held.gpus
            for group in mine & held.groups:
                group_servers[group] = group_servers.get(group, 0) + held.server
                group_gpus[group] = group_gpus.get(group, 0) + held.gpus
        return cls(servers, jobs, gpus, group_servers, group_gpus)


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
    for group, limit in quota.group_servers.items():
        running = (group_servers or {}).get(group, 0)
        if running + 1 > limit:
            raise QuotaError(
                "group_servers",
                f"quota: group '{group}' already runs {_plural(running, 'server')}, "
                f"the group's limit is {limit}",
            )
    check_gpus(
        quota, running_gpus=running_gpus, requested_gpus=requested_gpus, group_gpus=group_gpus
    )


def check_gpus(
    quota: UserQuota,
    *,
    running_gpus: int,
    requested_gpus: int,
    group_gpus: Mapping[str, int] | None = None,
) -> None:
    """Raise QuotaError if `requested_gpus` more GPUs (a server's or a job's) would exceed the
    user's `gpus` or a group's `group_gpus`, with `running_gpus` held by the user's servers and
    jobs and `group_gpus` by each group's members."""
    if quota.gpus.value is not None and running_gpus + requested_gpus > quota.gpus.value:
        held = f"you already hold {_plural(running_gpus, 'GPU')} and ask for {requested_gpus} more"
        asked = held if running_gpus else f"you ask for {_plural(requested_gpus, 'GPU')}"
        raise QuotaError("gpus", f"quota: {asked}, {quota.gpus.describe()}")
    for group, limit in quota.group_gpus.items():
        held_by_group = (group_gpus or {}).get(group, 0)
        if requested_gpus and held_by_group + requested_gpus > limit:
            raise QuotaError(
                "group_gpus",
                f"quota: group '{group}' already holds {_plural(held_by_group, 'GPU')} and you ask "
                f"for {requested_gpus} more, the group's limit is {limit}",
                group,
                limit,
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


def check_server(quota: UserQuota, usage: Usage, requested_gpus: int) -> None:
    """Raise QuotaError if one more server holding `requested_gpus` exceeds a limit, with what
    the user and their groups hold now (servers and jobs)."""
    check_server_start(
        quota,
        running_servers=usage.servers,
        running_gpus=usage.gpus,
        requested_gpus=requested_gpus,
        group_servers=usage.group_servers,
        group_gpus=usage.group_gpus,
    )


def job_wait_reason(quota: UserQuota, usage: Usage, new_gpus: int) -> str | None:
    """Why a job holding `new_gpus` GPUs of its own must wait, with what the user and their
    groups hold now: a concurrent-jobs slot, or GPUs under `gpus` or `group_gpus`; None when it
    may start now."""
    limit = quota.jobs
    if limit.value is not None and usage.jobs >= limit.value:
        return (
            f"queued: {usage.jobs} of {limit.value} concurrent jobs running, "
            f"limit of group '{limit.granted_by}'"
        )
    try:
        check_gpus(
            quota, running_gpus=usage.gpus, requested_gpus=new_gpus, group_gpus=usage.group_gpus
        )
    except QuotaError as e:
        return f"queued: {e.message.removeprefix('quota: ')}"
    return None
