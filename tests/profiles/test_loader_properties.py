"""Property tests of the profile loader: whatever a file holds, loading it gives a catalog or a
ProfileError naming the file, quickly; YAML aliases cannot blow a file up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubflow.profiles import load_profiles
from hubflow.profiles.errors import ProfileError
from hubflow.profiles.loader import MAX_EXPANDED_NODES, MAX_FILE_BYTES

PROFILE_KEYS = [
    "slug",
    "display_name",
    "ides",
    "cpu",
    "memory",
    "gpu",
    "options",
    "groups",
    "default",
    "profileList",
    "profiles",
    "quotas",
    "defaults",
    "kubespawner_override",
    "limit",
    "guarantee",
    "count",
    "min",
    "max",
    "step",
    "choices",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["1Gi", "500m", "2G", "²", "1e999", "9" * 5000, "jupyterlab", "A100"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(PROFILE_KEYS), st.text(max_size=8)), inner, max_size=5
        ),
    ),
    max_leaves=30,
)


def load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(text)
    start = time.perf_counter()
    try:
        load_profiles(path)
    except ProfileError as e:
        assert e.file == str(path)
    assert time.perf_counter() - start < 1


@given(VALUES)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_document_loads_or_is_refused_naming_the_file(tmp_path: Path, data: Any) -> None:
    load(tmp_path, yaml.safe_dump({"profiles": data} if isinstance(data, list) else data))


@given(st.text(max_size=300))
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_text_loads_or_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    load(tmp_path, text)


@given(st.integers(min_value=2, max_value=12), st.integers(min_value=2, max_value=12))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_nested_aliases_are_bounded_before_anything_walks_them(
    tmp_path: Path, width: int, depth: int
) -> None:
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    for level in range(1, depth + 1):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    if width ** (depth + 1) > MAX_EXPANDED_NODES:
        with pytest.raises(ProfileError, match="YAML aliases"):
            load_profiles(path)
    else:
        with pytest.raises(ProfileError):  # small enough to build, but no profile file
            load_profiles(path)
    assert time.perf_counter() - start < 1


def test_an_alias_inside_itself_a_huge_number_and_a_huge_file_are_refused(tmp_path: Path) -> None:
    cases = {
        "a: &a [*a]\n": "refers to itself",
        "profiles:\n- slug: x\n  cpu: {limit: " + "9" * 5000 + "}\n": "a number of 5000 characters",
        "# " + "x" * MAX_FILE_BYTES + "\n": "larger than 1 MiB",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(ProfileError, match=message):
            load_profiles(path)


def test_a_small_alias_is_still_fine(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "ides: &ides {jupyterlab: {}}\n"
        "profiles:\n"
        "  - {slug: one, display_name: One, ides: *ides, cpu: {limit: 1}}\n"
        "  - {slug: two, display_name: Two, ides: *ides, cpu: {limit: 2}}\n"
    )
    try:
        catalog = load_profiles(path)
    except ProfileError as e:
        assert "ides" in str(e)  # a native file has no top-level 'ides': refused by name
    else:
        assert [p.slug for p in catalog.profiles] == ["one", "two"]
