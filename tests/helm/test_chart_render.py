"""`helm lint` and `helm template` with default and example values; every rendered object is
valid for Kubernetes 1.30 (kubernetes-validate, strict: no unknown fields)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helm.chart import CHART, EXAMPLES, K8S_VERSION, lint

#: The oldest Kubernetes the chart accepts (Chart.yaml's kubeVersion), the oldest API that
#: kubernetes-validate knows.
OLDEST_K8S = "1.25"
#: What every installation has, whatever the values.
ALWAYS = {
    ("ServiceAccount", "-hub"),
    ("Role", "-hub"),
    ("RoleBinding", "-hub"),
    ("ConfigMap", "-hub-config"),
    ("ConfigMap", "-profiles"),
    ("Deployment", "-hub"),
    ("Service", "-hub"),
    ("Deployment", "-proxy"),
    ("Service", "-proxy-public"),
    ("Service", "-proxy-api"),
}


def _kinds(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (o["kind"], suffix)
        for o in objects
        for kind, suffix in ALWAYS
        if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)
    }


def _validate_all(objects: list[dict[str, Any]], version: str = K8S_VERSION) -> None:
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at {e.path}")
    assert not problems, "\n".join(problems)


def test_lint_passes_with_default_values() -> None:
    assert "0 chart(s) failed" in lint()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_lint_passes_with_example_values(path: Path) -> None:
    assert "0 chart(s) failed" in lint(files=[path])


def test_there_are_examples_to_test() -> None:
    assert {p.stem for p in EXAMPLES} >= {"gpu-oidc-external-db-ingress", "github-loadbalancer"}


def test_default_render_is_valid_kubernetes(default_objects: list[dict[str, Any]]) -> None:
    assert _kinds(default_objects) == ALWAYS
    _validate_all(default_objects)


def test_example_render_is_valid_kubernetes(
    example: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, objects = example
    assert _kinds(objects) == ALWAYS
    _validate_all(objects)


def test_render_is_valid_for_the_oldest_kubernetes_the_chart_accepts(
    default_objects: list[dict[str, Any]], gpu_objects: list[dict[str, Any]]
) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["kubeVersion"] == f">={OLDEST_K8S}.0-0"
    _validate_all(default_objects + gpu_objects, OLDEST_K8S)


def test_validation_catches_an_invalid_object(default_objects: list[dict[str, Any]]) -> None:
    """The check above can fail: a misspelled field in a rendered Deployment is refused."""
    deployment = next(o for o in default_objects if o["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(AssertionError, match="replica"):
        _validate_all([broken])
