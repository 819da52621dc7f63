"""Property tests of the spawn form's server-side check: any form (the page's lists of values,
or a REST API spawn's JSON) resolves to what the profile offers, or is refused with a
ChoiceError naming one of its fields, in milliseconds whatever its size."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hubflow.profiles import load_profiles
from hubflow.profiles.errors import ChoiceError
from hubflow.spawner.profile_mixin import MAX_VALUE_CHARS, flatten_form, form_choices
from tests.conftest import TEST_PROFILES

CATALOG = load_profiles(TEST_PROFILES)
GROUPS = ["gpu-users", "ml-team"]
FIELDS = ["profile", "_xsrf"] + [
    f"profile-option-{p.slug}--{name}"
    for p in CATALOG.profiles
    for name in ("ide", "cpu", "memory", "gpu", "flavour", "flavour--unlisted-choice")
]
GOOD = ["cpu-small", "cpu-large", "gpu-a100", "team-secret", "jupyterlab", "vscode", "fancy",
        "plain", "gpu-only", "unlisted-choice", "1", "2", "4", "8", "2Gi", "4Gi", "6", "500m",
        "3000m", "0.5", "abc"]  # fmt: skip
BAD = ["", "²", "٣", "1e9", "-1", "NaN", "Infinity", " 2 ", "ok\n", "\x00", "2Gi\r", "../x"]
VALUES = st.one_of(
    st.sampled_from(GOOD + BAD),
    st.text(max_size=40),
    st.integers(min_value=1, max_value=10**6).map(lambda n: "9" * n),
)
JSON = st.one_of(VALUES, st.none(), st.booleans(), st.integers(), st.lists(VALUES, max_size=3))
NAMES = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))


def check(options: dict[str, Any], parse: Any) -> None:
    start = time.perf_counter()
    try:
        resolved = CATALOG.resolve(parse(options), GROUPS)
    except ChoiceError as refusal:
        assert refusal.field in options or refusal.field in ("profile", "user_options"), refusal
        assert str(refusal)
    else:
        profile = CATALOG.get(resolved.slug)
        assert profile is not None and profile.slug != "team-secret"
        for amount, value in (
            (profile.cpu.limit, resolved.cpu_limit),
            (profile.memory.limit, resolved.mem_limit),
            (profile.gpu.count if profile.gpu else None, resolved.gpu_count),
        ):
            assert amount is None or amount.allows(value), (amount, value)
        assert all(len(v) <= MAX_VALUE_CHARS for v in parse(options).values())
    assert time.perf_counter() - start < 0.1, len(repr(options))


@given(st.dictionaries(NAMES, st.lists(VALUES, min_size=0, max_size=3), max_size=6))
@example({"profile": ["cpu-large"], "profile-option-cpu-large--memory": ["9" * 999_990]})
@example({"profile": ["cpu-large"], "profile-option-cpu-large--cpu": ["²"]})
@example({"profile": ["cpu-small", "cpu-large"]})
@settings(max_examples=400, deadline=None)
def test_a_posted_form_resolves_to_what_is_offered_or_is_refused_by_field(
    form: dict[str, list[str]],
) -> None:
    check(form, flatten_form)


@given(st.dictionaries(NAMES, JSON, max_size=6))
@example({"profile": ["cpu-small"]})
@example({"profile": "cpu-large", "profile-option-cpu-large--gpu": "9" * 400})
@settings(max_examples=400, deadline=None)
def test_rest_api_options_resolve_or_are_refused_by_field(options: dict[str, Any]) -> None:
    check(options, form_choices)


def test_a_list_where_text_is_expected_is_refused_by_name() -> None:
    try:
        form_choices({"profile": ["cpu-small"]})
    except ChoiceError as refusal:
        assert (refusal.field, str(refusal)) == ("profile", "profile: expected text, got a list")
    else:
        raise AssertionError("a list was taken for a profile")
