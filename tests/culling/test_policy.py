"""Culling policies: profile fields, deployment defaults (shorter for GPU servers), due times,
settings from the environment and the warning's words."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hubflow.culling.notices import notice, write_notices
from hubflow.culling.policy import Policy, due_cull, policy_for
from hubflow.hub.culling_notices import message, read_notices
from hubflow.hub.settings import CullingSettings, SettingsError
from hubflow.profiles import ProfileError, load_profiles
from hubflow.profiles.quantities import format_duration, parse_duration

PROFILES = """
defaults:
  ides: {jupyterlab: {}}
  culling: {max_age: 12h}
profiles:
  - {slug: cpu, display_name: CPU}
  - {slug: gpu, display_name: GPU, gpu: {count: 1}}
  - {slug: short, display_name: Short, culling: {idle_timeout: 10m}}
  - {slug: keep, display_name: Keep, gpu: {count: 1}, culling: {idle_timeout: 0, max_age: 0}}
"""
DEFAULTS = CullingSettings(idle_timeout=3600, gpu_idle_timeout=1200, max_age=86400)
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def server(slug: str, gpus: int = 0, **times: datetime) -> dict[str, Any]:
    """A hub API server model as the culler reads it, with hubflow's state."""
    started = times.get("started", T0)
    last = times.get("last_activity")
    return {
        "ready": True,
        "started": started.isoformat(),
        "last_activity": last.isoformat() if last else None,
        "state": {"hubflow": {"profile": {"slug": slug, "gpu_count": gpus}}},
    }


@pytest.fixture
def catalog(tmp_path: Path) -> Any:
    path = tmp_path / "p.yaml"
    path.write_text(PROFILES)
    return load_profiles(path)


@pytest.mark.parametrize(
    ("slug", "gpus", "policy"),
    [
        ("cpu", 0, Policy(3600, 43200)),  # the CPU default; max age from the file's defaults
        ("gpu", 1, Policy(1200, 43200)),  # a server holding GPUs: the shorter default
        ("short", 0, Policy(600, 43200)),
        ("keep", 1, Policy(0, 0)),
        ("deleted-profile", 2, Policy(1200, 86400)),  # gone from the files: by what it holds
    ],
)
def test_policy_of_a_server(catalog: Any, slug: str, gpus: int, policy: Policy) -> None:
    assert policy_for(server(slug, gpus), catalog, DEFAULTS) == policy


def test_a_policy_of_zeros_never_culls() -> None:
    assert not Policy(0, 0).culls and Policy(0, 60).culls and Policy(60, 0).culls


def test_due_is_the_earlier_of_idle_timeout_and_maximum_age() -> None:
    idle_soon = server("cpu", started=T0, last_activity=T0 + timedelta(minutes=30))
    due = due_cull(idle_soon, Policy(600, 7200))
    assert due and (due.at, due.reason) == (T0 + timedelta(minutes=40), "idle")
    old = server("cpu", started=T0, last_activity=T0 + timedelta(hours=2))
    due = due_cull(old, Policy(3600, 7200))
    assert due and (due.at, due.reason) == (T0 + timedelta(hours=2), "age")
    never_active = server("cpu", started=T0)  # no activity yet: idle since the start
    due = due_cull(never_active, Policy(60, 0))
    assert due and due.at == T0 + timedelta(seconds=60)
    assert due_cull(never_active, Policy(0, 0)) is None


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        (
            "idle_timeout",
            "'10 minutes'",
            "culling.idle_timeout: must be a duration such as 90, 30m",
        ),
        ("idle_timeout", "-5", "culling.idle_timeout: must be an integer ≥ 0"),
        ("max_age", "1.5h", "culling.max_age: must be a duration such as"),
        ("grace", "10m", "culling.grace: unknown field 'grace'"),
    ],
)
def test_bad_culling_fields_are_refused_by_name(
    tmp_path: Path, field: str, value: str, said: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        f"profiles:\n  - {{slug: a, display_name: A, ides: {{jupyterlab: {{}}}}, "
        f"culling: {{{field}: {value}}}}}\n"
    )
    with pytest.raises(ProfileError, match=said):
        load_profiles(path)


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90), ("45s", 45), ("30m", 1800), ("1h30m", 5400), ("2d", 172800)]
)
def test_durations(text: int | str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_durations_in_words() -> None:
    assert [format_duration(s) for s in (0, 45, 1200, 5400, 90061)] == [
        "0 s",
        "45 s",
        "20 min",
        "1 h 30 min",
        "1 d 1 h 1 min 1 s",
    ]


def test_settings_from_the_environment_and_bad_ones_named() -> None:
    s = CullingSettings.from_env(
        {"HUBFLOW_CULL_GPU_IDLE_TIMEOUT": "15m", "HUBFLOW_CULL_EVERY": "5"}
    )
    assert (s.enabled, s.idle_timeout, s.gpu_idle_timeout, s.every) == (True, 3600, 900, 5)
    assert not CullingSettings.from_env({"HUBFLOW_CULLING": "off"}).enabled
    with pytest.raises(SettingsError, match="HUBFLOW_CULL_MAX_AGE='soon'"):
        CullingSettings.from_env({"HUBFLOW_CULL_MAX_AGE": "soon"})
    with pytest.raises(
        SettingsError, match="HUBFLOW_CULL_EVERY='0': must be a duration of at least 1 second"
    ):
        CullingSettings.from_env({"HUBFLOW_CULL_EVERY": "0"})
    with pytest.raises(SettingsError, match="HUBFLOW_CULLING='maybe'"):
        CullingSettings.from_env({"HUBFLOW_CULLING": "maybe"})


def test_warnings_round_trip_and_their_words(tmp_path: Path) -> None:
    due = due_cull(server("cpu", started=T0), Policy(1200, 0))
    assert due
    path = tmp_path / "notices.json"
    write_notices(path, {"alice": {"": notice(due)}})
    item = read_notices(path)["alice"][""]
    said = message("", item, T0 + timedelta(minutes=15))
    assert said.startswith("Your server will be stopped at 00:20:00 UTC (in about 5 min)")
    assert "not been used for 20 min" in said
    aged = due_cull(server("cpu", started=T0), Policy(0, 3600))
    assert aged
    said = message("train", notice(aged), T0)
    assert said.startswith("Your server “train” will be stopped") and "maximum age of 1 h" in said
    assert read_notices(tmp_path / "missing.json") == {}
