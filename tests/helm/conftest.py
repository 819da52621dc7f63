"""Renders shared by the chart tests: each `helm template` runs once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helm.chart import EXAMPLES, render


@pytest.fixture(scope="session")
def default_objects() -> list[dict[str, Any]]:
    """The chart rendered with its default values."""
    return render()


@pytest.fixture(scope="session", params=EXAMPLES, ids=lambda p: p.stem)
def example(request: pytest.FixtureRequest) -> tuple[Path, list[dict[str, Any]]]:
    """An example values file and the chart rendered with it."""
    return request.param, render(files=[request.param])


def _example(stem: str) -> list[dict[str, Any]]:
    return render(files=[next(p for p in EXAMPLES if p.stem == stem)])


@pytest.fixture(scope="session")
def gpu_objects() -> list[dict[str, Any]]:
    """The chart rendered with the GPU/OIDC/external-database/Ingress example."""
    return _example("gpu-oidc-external-db-ingress")


@pytest.fixture(scope="session")
def github_objects() -> list[dict[str, Any]]:
    """The chart rendered with the GitHub/LoadBalancer/extraConfig example."""
    return _example("github-loadbalancer")
