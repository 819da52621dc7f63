"""Quotas: the most generous limit among `default` and the user's groups, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubflow.profiles import (
    Limit,
    QuotaError,
    UserQuota,
    check_job_start,
    check_server_start,
    effective_quota,
    load_profiles,
)

TEAM = Path(__file__).parent / "fixtures" / "profiles" / "team.yaml"
CATALOG = load_profiles(TEAM)


def test_no_groups_get_the_default_limits() -> None:
    quota = CATALOG.effective_quota([])
    assert quota.servers == Limit(1, "default")
    assert quota.gpus == Limit(0, "default")
    assert quota.jobs == Limit(2, "default")
    assert quota.job_workers == Limit(4, "default")
    assert quota.job_gpus == Limit(None, None)  # nobody sets it: unlimited
    assert (quota.group_servers, quota.group_gpus) == ({}, {})


def test_each_field_takes_the_most_generous_group_that_sets_it() -> None:
    quota = CATALOG.effective_quota(["students", "researchers"])
    assert quota.servers == Limit(2, "students")
    assert quota.gpus == Limit(2, "researchers")
    assert quota.jobs == Limit(2, "default")
    assert quota.group_servers == {"researchers": 3}
    both = CATALOG.effective_quota(["researchers", "gpu-users"])
    assert both.gpus == Limit(4, "gpu-users")
    assert both.group_gpus == {"gpu-users": 8}


def test_a_group_may_grant_less_than_default_without_lowering_it() -> None:
    quotas = {"default": {"servers": 3}, "tight": {"servers": 1}}
    assert effective_quota(quotas, ["tight"]).servers == Limit(3, "default")


def test_without_any_quota_everything_is_unlimited() -> None:
    quota = effective_quota({}, ["anyone"])
    assert quota == UserQuota()
    check_server_start(quota, running_servers=100, running_gpus=100, requested_gpus=100)
    check_job_start(quota, running_jobs=100, workers=100, gpus=100)


def test_the_server_limit_names_the_group_that_set_it() -> None:
    quota = CATALOG.effective_quota(["students"])
    check_server_start(quota, running_servers=1, running_gpus=0)
    with pytest.raises(QuotaError) as caught:
        check_server_start(quota, running_servers=2, running_gpus=0)
    assert (
        str(caught.value) == "quota: you already run 2 servers, the limit for group 'students' is 2"
    )
    assert caught.value.limit == "servers"


def test_the_default_limit_is_named_as_such() -> None:
    with pytest.raises(QuotaError) as caught:
        check_server_start(CATALOG.effective_quota([]), running_servers=1, running_gpus=0)
    assert str(caught.value) == "quota: you already run 1 server, the default limit is 1"


def test_gpu_limits_count_held_and_requested_gpus() -> None:
    quota = CATALOG.effective_quota(["gpu-users"])
    check_server_start(quota, running_servers=1, running_gpus=2, requested_gpus=2)
    with pytest.raises(QuotaError) as caught:
        check_server_start(quota, running_servers=1, running_gpus=3, requested_gpus=2)
    assert str(caught.value) == (
        "quota: you already hold 3 GPUs and ask for 2 more, the limit for group 'gpu-users' is 4"
    )
    with pytest.raises(QuotaError) as caught:
        check_server_start(
            CATALOG.effective_quota([]), running_servers=0, running_gpus=0, requested_gpus=1
        )
    assert str(caught.value) == "quota: you ask for 1 GPU, the default limit is 0"
    check_server_start(
        CATALOG.effective_quota([]), running_servers=0, running_gpus=0, requested_gpus=0
    )


def test_group_totals_count_every_member() -> None:
    quota = CATALOG.effective_quota(["gpu-users"])
    check_server_start(
        quota, running_servers=0, running_gpus=0, requested_gpus=2, group_gpus={"gpu-users": 6}
    )
    with pytest.raises(QuotaError) as caught:
        check_server_start(
            quota, running_servers=0, running_gpus=0, requested_gpus=2, group_gpus={"gpu-users": 7}
        )
    assert str(caught.value) == (
        "quota: group 'gpu-users' already holds 7 GPUs and you ask for 2 more, the group's limit is 8"
    )
    assert caught.value.limit == "group_gpus"
    researcher = CATALOG.effective_quota(["researchers"])
    with pytest.raises(
        QuotaError,
        match=r"^quota: group 'researchers' already runs 3 servers, the group's limit is 3$",
    ):
        check_server_start(
            researcher, running_servers=0, running_gpus=0, group_servers={"researchers": 3}
        )


def test_job_limits() -> None:
    quota = CATALOG.effective_quota(["gpu-users"])
    check_job_start(quota, running_jobs=3, workers=8, gpus=8)
    with pytest.raises(
        QuotaError, match=r"^quota: you already run 4 jobs, the limit for group 'gpu-users' is 4$"
    ):
        check_job_start(quota, running_jobs=4, workers=1)
    with pytest.raises(
        QuotaError,
        match=r"^quota: you ask for 9 workers in one job, the limit for group 'gpu-users' is 8$",
    ):
        check_job_start(quota, running_jobs=0, workers=9)
    with pytest.raises(
        QuotaError,
        match=r"^quota: you ask for 9 GPUs in one job, the limit for group 'gpu-users' is 8$",
    ):
        check_job_start(quota, running_jobs=0, workers=1, gpus=9)
