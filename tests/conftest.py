"""Fixtures shared by the whole suite: a real hub (with its real proxy) and logged-in users."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.hubclient import HubClient, HubProcess, passable_parents

#: The profiles the integration tests run against (small, CPU-only, two groups).
TEST_PROFILES = Path(__file__).parent / "integration" / "profiles" / "test_profiles.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests of the Kubernetes clusters last: on a fresh machine their binaries are still
    building (started in the background by `make test`) while the rest of the suite runs."""
    items.sort(key=_cluster_order)
    for item in items:
        if _cluster_order(item)[0] and not item.nodeid.startswith(CLUSTER_TEST_PATHS):
            raise pytest.UsageError(
                f"{item.nodeid} starts a test cluster: add its path to CLUSTER_TEST_PATHS "
                "(tests/conftest.py)"
            )


#: Where the tests that start a control plane live (with others): under `make test`'s two
#: pytest-xdist workers, one runs these, the other the rest.
CLUSTER_TEST_PATHS = ("tests/kube/", "tests/helm/test_chart_hub_runs.py")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Two work units, each run in order on a worker of its own: the clusters' folder (which
    waits for the cluster's binaries first) and the rest (whose tests share local-mode accounts,
    GPUs and cgroups, so they never run side by side)."""
    from xdist.scheduler import LoadScopeScheduling

    class ClusterApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "cluster" if nodeid.startswith(CLUSTER_TEST_PATHS) else "host"

    return ClusterApart(config, log)


#: The session fixtures that start a control plane from the built binaries.
CLUSTER_FIXTURES = ("real_cluster", "bare_cluster")


def _cluster_order(item: pytest.Item) -> tuple[bool, bool]:
    """Tests without a cluster first, then the real cluster's, then the bare control plane's
    (which starts a second cluster, kept to the end of the run)."""
    names = getattr(item, "fixturenames", ())
    return any(name in names for name in CLUSTER_FIXTURES), "bare_cluster" in names


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Before the first test of a cluster, wait for its binaries outside any test's timeout (a
    build that fails here fails again, with its message, in the cluster's fixture)."""
    global _cluster_binaries_waited
    if not _cluster_binaries_waited and _cluster_order(item)[0]:
        _cluster_binaries_waited = True
        from tests.kube.cluster.controlplane import build_binaries

        with contextlib.suppress(subprocess.CalledProcessError):
            build_binaries()
    yield


_cluster_binaries_waited = False


@pytest.fixture(autouse=True)
def _passable_tmp_path(request: pytest.FixtureRequest) -> None:
    """A test's tmp_path may hold a root hub's data dir: users' accounts must pass through."""
    if "tmp_path" in request.fixturenames:
        passable_parents(request.getfixturevalue("tmp_path") / "data")


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """Start hubs of your own: hub_factory(profiles=[...], extra_env={...}, start=True,
    config_file=...)."""
    started: list[HubProcess] = []

    def make(
        profiles: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
        start: bool = True,
        data_dir: Path | None = None,
        config_file: Path | None = None,
    ) -> HubProcess:
        hub = HubProcess(
            data_dir=data_dir or tmp_path / f"hub{len(started)}",
            profiles=profiles or [str(TEST_PROFILES)],
            extra_env=extra_env or {},
            **({"config_file": config_file} if config_file else {}),
        )
        started.append(hub)
        return hub.start() if start else hub

    yield make
    for hub in started:
        hub.kill_everything()


@pytest.fixture
def hub(hub_factory: Callable[..., HubProcess]) -> HubProcess:
    """A running hub in local mode with the test profiles and the demo users."""
    return hub_factory()


@pytest.fixture
def login(hub: HubProcess) -> Callable[[str], HubClient]:
    """login('alice') -> a browser-like session logged in to `hub`."""

    def make(username: str) -> HubClient:
        return HubClient(hub, username).login()

    return make
