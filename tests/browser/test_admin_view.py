"""The admin view in headless Chromium: running servers by profile, GPUs in use, jobs by user and
state; users who are not admins are turned away."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.helpers.hubclient import HubClient, HubProcess
from tests.integration.test_jobs_api import Jobs

A100 = "NVIDIA-A100-SXM4-80GB"


def row_cells(page: Page, table: str, first_cell: str) -> list[str]:
    """The cells of the row of `table` whose first cell reads `first_cell`."""
    row = page.locator(f"{table} tbody tr").filter(
        has=page.locator(":scope > :first-child", has_text=first_cell)
    )
    expect(row).to_have_count(1)
    return [text.strip() for text in row.locator("th, td").all_inner_texts()]


def test_admin_view_shows_servers_by_profile_gpus_in_use_and_jobs_by_state(
    hub_factory: Callable[..., HubProcess],
    page: Page,
    log_in: Callable[[Page, HubProcess, str], None],
    screenshot: Callable[[Page, str], Path],
) -> None:
    hub = hub_factory(extra_env={"HUBFLOW_GPUS": f"0:{A100},1:{A100}"})
    alice = HubClient(hub, "alice").login()
    alice.spawn({"profile": "gpu-a100", "profile-option-gpu-a100--gpu": "1"})
    jobs = Jobs(alice)
    finished = jobs.submit("'done'", workers=1, framework="python").json()["id"]
    assert jobs.wait(finished)["state"] == "Succeeded"
    sleeping = jobs.submit("import time\ntime.sleep(600)", workers=1, framework="python")
    running = sleeping.json()["id"]
    jobs.wait(running, states=("Running",))

    log_in(page, hub, "alice")
    refused = page.goto(f"{hub.url}/hub/hubflow/admin")
    assert refused is not None and refused.status == 403

    page.context.clear_cookies()
    log_in(page, hub, "admin")
    page.goto(f"{hub.url}/hub/hubflow/admin")
    expect(page.get_by_role("heading", name="GPUs in use by type")).to_be_visible()
    assert row_cells(page, "#hubflow-gpus", "NVIDIA A100 SXM4 80GB") == [
        "NVIDIA A100 SXM4 80GB",
        "1",
        "1",
        "2",
    ]
    assert row_cells(page, "#hubflow-servers-by-profile", "A100 GPUs") == ["A100 GPUs", "1"]
    assert row_cells(page, "#hubflow-servers", "alice") == [
        "alice",
        "(default)",
        "A100 GPUs",
        "jupyterlab",
        "1 × A100",
        "running",
    ]
    states = page.locator("#hubflow-jobs-by-user thead th").all_inner_texts()
    by_state = dict(
        zip(states[1:], row_cells(page, "#hubflow-jobs-by-user", "alice")[1:], strict=True)
    )
    assert by_state == {
        "Queued": "0",
        "Pending": "0",
        "Running": "1",
        "Succeeded": "1",
        "Failed": "0",
        "Cancelled": "0",
    }
    expect(page.locator("#hubflow-active-jobs")).to_contain_text(running)
    expect(page.locator("#hubflow-active-jobs")).not_to_contain_text(finished)
    screenshot(page, "admin-view")
