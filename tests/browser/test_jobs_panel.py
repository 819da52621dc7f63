"""The Jobs panel in a real browser: alice logs in, starts a CPU server, types a torch.distributed
cell, runs it from the cell toolbar's "Run distributed" button on 2 workers, and watches the job
succeed in the Jobs panel with each rank's log and a notification; a second, long job shows
its log while it runs and is cancelled from the panel with the keyboard. Screenshots of each step go to the test artifacts folder; with
HUBFLOW_DOC_IMAGES=1 the Jobs panel's also to docs/img/jobs-panel.png for the README."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.lab import (
    CHROMIUM,
    Lab,
    Screenshots,
    chromium_page,
    log_in,
    publish_doc_image,
    run_on_own_thread,
    start_server,
)
from tests.helpers.hubclient import HubProcess

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: `make browser` installs it"
)

ALL_REDUCE = """\
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([dist.get_rank() + 1.0])
dist.all_reduce(t)
print(f"rank {dist.get_rank()} of {dist.get_world_size()}: sum {t.item()}", flush=True)
total = t.item()"""

LONG_JOB = """\
import time
print("waiting for cancel", flush=True)
time.sleep(600)"""

RUN_DISTRIBUTED = "hubflow:run-distributed"


@pytest.mark.timeout(900)
def test_run_distributed_from_the_cell_toolbar_and_follow_the_job_in_the_jobs_panel(
    hub: HubProcess, request: pytest.FixtureRequest
) -> None:
    run_on_own_thread(run_and_cancel_jobs_from_jupyterlab(hub, Screenshots(request.node.name)))


async def run_and_cancel_jobs_from_jupyterlab(hub: HubProcess, shots: Screenshots) -> None:
    async with chromium_page(f"{shots.prefix}--failed.png") as page:
        await log_in(page, hub, "alice")
        await start_server(page, hub, "alice", "cpu-small")
        lab = Lab(page)
        await lab.decline_news()
        cell = await lab.new_notebook()
        await lab.type_code(cell, ALL_REDUCE)
        await shots.take(page, "cell-typed")

        # the dialog refuses what %%distribute would refuse, naming the field
        await lab.cell_toolbar_button(cell, RUN_DISTRIBUTED).click()
        dialog = page.locator(".jp-Dialog")
        run = dialog.get_by_role("button", name="Run")
        await dialog.get_by_label("Workers", exact=True).fill("0")
        await expect(run).to_be_disabled()
        await dialog.get_by_label("Workers", exact=True).fill("2")
        await dialog.get_by_label("Variables to push").fill("not-a-name")
        await dialog.get_by_label("Variables to pull").fill("total")
        await run.click()
        await expect(dialog.get_by_role("alert")).to_have_text(
            "Variables to push: “not-a-name” is not a Python variable name"
        )
        await expect(dialog.get_by_label("Workers", exact=True)).to_have_value("2")
        await dialog.get_by_label("Variables to push").fill("")
        await shots.take(page, "run-distributed-dialog")
        await run.click()
        await expect(dialog).to_have_count(0)

        # the cell now runs through %%distribute; the job shows up in the Jobs panel
        await expect(cell.locator(".cm-content")).to_contain_text(
            "%%distribute --workers 2 --pull total"
        )
        panel = page.locator("#hubflow-jobs-panel")
        await expect(panel).to_be_visible()
        row = panel.locator(".hf-jobs-row").first
        await expect(row.locator(".hf-job-workers")).to_have_text("2")
        await expect(row.locator(".hf-job-gpus")).to_have_text("0")
        await expect(row.locator(".hf-job-state")).to_have_text("Succeeded")
        await expect(row.locator(".hf-job-elapsed")).to_have_text(re.compile(r"^\d"))
        log = panel.locator(".hf-jobs-log")
        await expect(log).to_contain_text("rank 0 of 2: sum 3.0")
        await expect(lab.notification(r"Job \w+ succeeded in")).to_be_in_viewport(ratio=1)
        best = await shots.take(page, "jobs-panel-succeeded")
        publish_doc_image(best, "jobs-panel.png")
        await panel.get_by_role("button", name="rank 1").click()
        await expect(log).to_contain_text("rank 1 of 2: sum 3.0")
        await expect(log).not_to_contain_text("rank 0 of 2")
        await shots.take(page, "jobs-panel-rank-1-log")
        # the cell pulled rank 0's variable back into the notebook
        await expect(cell.locator(".jp-OutputArea")).to_contain_text("Succeeded")

        # a long job: its log arrives while it runs, and Cancel in the panel stops it
        await lab.cell_toolbar_button(cell, "notebook:insert-cell-below").click()
        second = page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(1)
        await lab.type_code(second, LONG_JOB)
        await lab.cell_toolbar_button(second, RUN_DISTRIBUTED).click()
        await run.click()
        running = panel.locator('.hf-jobs-row[data-state="Running"]')
        await expect(running).to_have_count(1)
        await expect(log).to_contain_text("waiting for cancel")
        await shots.take(page, "jobs-panel-running")
        # refreshes update the row in place: keyboard focus stays; Tab, Enter cancels
        await running.focus()
        elapsed = running.locator(".hf-job-elapsed")
        await expect(elapsed).not_to_have_text(await elapsed.text_content() or "")
        await expect(running).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(running.get_by_role("button", name="Cancel")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(row.locator(".hf-job-state")).to_have_text("Cancelled")
        await expect(lab.notification(r"Job \w+ was cancelled")).to_be_in_viewport(ratio=1)
        await shots.take(page, "jobs-panel-cancelled")
