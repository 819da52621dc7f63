"""The chart's databases: PostgreSQL URLs for the hub and the jobs service from a Secret, and
both connection pools sized from values, as the settings the hub reads (hub/settings.py)."""

from __future__ import annotations

from typing import Any

from hubflow.hub.settings import HubflowSettings, JobsSettings
from tests.helm.chart import env_of, hub_container, refusal, render

EXTERNAL = {
    "type": "external",
    "external": {"secretName": "hubflow-db", "urlKey": "hub-url", "jobsUrlKey": "jobs-url"},
}


def pool_settings(env: dict[str, Any]) -> dict[str, str]:
    """The pool settings among a container's variables."""
    return {
        name: value for name, value in env.items() if name.endswith(("_POOL_SIZE", "_OVERFLOW"))
    }


def test_external_databases_come_from_the_secret_with_their_pools_sized() -> None:
    pools = {"hub": {"size": 3, "maxOverflow": 2}, "jobs": {"size": 8, "maxOverflow": 4}}
    objects = render({"hub": {"database": {**EXTERNAL, "pools": pools}}})
    env = env_of(hub_container(objects))
    assert env["HUBFLOW_HUB_DB_URL"] == {"secretKeyRef": {"name": "hubflow-db", "key": "hub-url"}}
    assert env["HUBFLOW_JOBS_DB_URL"] == {"secretKeyRef": {"name": "hubflow-db", "key": "jobs-url"}}
    plain = pool_settings(env)
    hub, jobs = HubflowSettings.from_env(plain), JobsSettings.from_env(plain)
    assert (hub.hub_db_pool_size, hub.hub_db_max_overflow) == (3, 2)
    assert (jobs.db_pool_size, jobs.db_max_overflow) == (8, 4)


def test_the_default_pools_are_the_settings_defaults() -> None:
    env: dict[str, Any] = env_of(hub_container(render({"hub": {"database": EXTERNAL}})))
    plain = pool_settings(env)
    assert HubflowSettings.from_env(plain).hub_db_pool_size == HubflowSettings().hub_db_pool_size
    assert JobsSettings.from_env(plain).db_max_overflow == JobsSettings().db_max_overflow


def test_a_pool_without_connections_is_refused() -> None:
    said = refusal(
        {"hub": {"database": {**EXTERNAL, "pools": {"jobs": {"size": 0, "maxOverflow": 1}}}}}
    )
    assert "size" in said
