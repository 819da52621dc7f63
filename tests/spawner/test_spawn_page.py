"""The spawn page's form: why a profile cannot start, which one is selected, and refusals that
name their form field."""

from __future__ import annotations

import re
from pathlib import Path

from hubflow.profiles import ChoiceError, QuotaError, load_profiles
from hubflow.spawner.gpus import GpuUnavailable
from hubflow.spawner.spawn_page import profile_view, render_profile_form, spawn_refusal

SHIPPED = load_profiles(Path(__file__).parents[2] / "profiles" / "default.yaml")
A100 = "NVIDIA-A100-SXM4-80GB"


def shipped(slug: str):  # noqa: ANN201 (a Profile)
    found = SHIPPED.get(slug)
    assert found is not None
    return found


def test_a_gpu_profile_says_how_many_are_free_and_why_it_cannot_start() -> None:
    multi = shipped("multi-gpu")  # 2 or 4 A100s
    view = profile_view(multi, {A100: (3, 4), "Tesla-T4": (1, 1)}, {})
    assert view["gpu_free"] == {"type": "A100", "free": 3, "total": 4}
    assert view["unavailable_reason"] is None
    view = profile_view(multi, {A100: (1, 4)}, {})
    assert view["unavailable_reason"] == "only 1 of 4 A100 GPUs are free, it needs 2"
    assert profile_view(multi, {}, {})["unavailable_reason"] == "no A100 GPU here"
    # Unknown availability (a cluster not listed yet) refuses nothing and shows no count.
    unknown = profile_view(multi, None, {})
    assert unknown["gpu_free"] is None and unknown["unavailable_reason"] is None


def test_quota_and_missing_ides_are_reasons_too() -> None:
    asked: list[int] = []

    def quota(gpus: int) -> str | None:
        asked.append(gpus)
        return "quota: you already run 1 server, the default limit is 1"

    view = profile_view(shipped("multi-gpu"), {A100: (4, 4)}, {}, quota)
    assert asked == [2], "the quota is checked for the fewest GPUs the profile allows"
    assert view["unavailable_reason"] == "quota: you already run 1 server, the default limit is 1"
    missing = {"jupyterlab": "x", "vscode": "y", "rstudio": "z"}
    view = profile_view(shipped("small-cpu"), {}, missing)
    assert view["unavailable_reason"] == "none of its IDEs is installed here"


def radio(form: str, slug: str) -> set[str]:
    """The attributes without a value (checked, disabled) of a profile's radio input."""
    tag = re.search(rf'<input[^>]*id="profile-radio-{slug}"[^>]*>', form)
    assert tag, slug
    return set(re.sub(r'[\w-]+="[^"]*"', "", tag.group(0)[len("<input") : -1]).split())


def test_the_default_profile_is_selected_unless_it_cannot_start() -> None:
    profiles = [shipped("gpu-1"), shipped("small-cpu"), shipped("large-cpu")]
    form = render_profile_form(profiles, {A100: (1, 1)}, {})
    assert [radio(form, p.slug) for p in profiles] == [set(), {"checked"}, set()]
    # No profile is marked default here but gpu-1 (first) cannot start: the next one is chosen.
    form = render_profile_form([shipped("gpu-1"), shipped("large-cpu")], {}, {})
    assert radio(form, "gpu-1") == {"disabled"}
    assert radio(form, "large-cpu") == {"checked"}
    assert "Cannot start now: no A100 GPU here" in form


def test_refusals_carry_their_words_and_the_field_they_are_about() -> None:
    refusal = spawn_refusal(ChoiceError("profile-option-x--memory", "Memory: 'lots' <b>"))
    assert refusal.status_code == 400
    assert refusal.jupyterhub_message == "Memory: 'lots' <b>"  # type: ignore[attr-defined]
    assert refusal.jupyterhub_html_message == (  # type: ignore[attr-defined]
        '<span class="hubflow-refusal" data-field="profile-option-x--memory">'
        "Memory: &#39;lots&#39; &lt;b&gt;</span>"
    )
    for error in (QuotaError("gpus", "quota: too many"), GpuUnavailable("not enough free GPUs")):
        refusal = spawn_refusal(error)
        assert refusal.status_code == 409
        assert 'data-field="profile"' in refusal.jupyterhub_html_message  # type: ignore[attr-defined]
    refusal = spawn_refusal(ValueError("IDE: not installed"))
    assert refusal.status_code == 400
    assert 'data-field=""' in refusal.jupyterhub_html_message  # type: ignore[attr-defined]
