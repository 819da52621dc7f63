"""Profiles edited under a running hub: the spawn page and the jobs service follow without a
restart; a broken edit is logged and the last good profiles stay in force."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TEST_PROFILES
from tests.helpers.hubclient import HubClient, HubProcess
from tests.integration.test_jobs_api import Jobs
from tests.integration.test_local_mode import offered_profiles


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not seen in {timeout}s: {what}")
        time.sleep(0.3)


def test_an_edit_reaches_the_spawn_page_and_a_broken_edit_keeps_the_last_good(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles.yaml"
    shutil.copy(TEST_PROFILES, profiles)
    hub = hub_factory(profiles=[str(profiles)])
    alice = HubClient(hub, "alice").login()
    assert "Small CPU" in alice.spawn_page()

    good = TEST_PROFILES.read_text().replace("Small CPU", "Tiny CPU")
    good += "  - {slug: cpu-new, display_name: Brand new CPU, ides: {jupyterlab: {}}}\n"
    profiles.write_text(good)
    wait_for(lambda: "cpu-new" in offered_profiles(alice.spawn_page()), "the new profile")
    page = alice.spawn_page()
    assert "Tiny CPU" in page and "Small CPU" not in page

    profiles.write_text(good.replace("slug: cpu-new", "slug: Not A Slug"))
    wait_for(lambda: "Refused a profile change" in hub.log(), "the refusal in the hub's log")
    refusal = next(line for line in hub.log().splitlines() if "Refused a profile change" in line)
    assert str(profiles) in refusal and "slug" in refusal
    assert offered_profiles(alice.spawn_page()) == {"cpu-small", "cpu-large", "gpu-a100", "cpu-new"}
    alice.spawn({"profile": "cpu-new"})  # the last good profiles are still the ones in force


def test_the_jobs_service_applies_an_edited_quota(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles.yaml"
    shutil.copy(TEST_PROFILES, profiles)
    hub = hub_factory(profiles=[str(profiles)])
    bob = HubClient(hub, "bob").login()
    bob.spawn({"profile": "cpu-small"})
    jobs = Jobs(bob)

    text = TEST_PROFILES.read_text()
    assert "job_workers: 4}" in text
    profiles.write_text(text.replace("job_workers: 4}", "job_workers: 1}", 1))

    def refused() -> bool:
        r = jobs.submit("print('hi')", workers=2, framework="python")
        if r.status_code == 201:
            jobs.wait(r.json()["id"])  # accepted under the old quota: let it end, ask again
            return False
        assert r.status_code in (403, 409), r.text
        return r.json().get("quota") == "job_workers"

    wait_for(refused, "a refusal naming job_workers")
