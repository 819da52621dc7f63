"""The Jobs panel in a real browser: alice logs in, starts a CPU server, types a torch.distributed
cell, runs it from the cell toolbar's "Run distributed" button on 2 workers, and watches the job
succeed in the Jobs panel with each rank's log and a notification; a second, long job shows
its log while it runs and is cancelled from the panel with the keyboard. A warm pool started by
a `%%distribute --warm` cell shows in the panel's Warm pools section (state, workers, GPUs, age,
idle time; Busy while a cell runs) and is stopped from its Stop button with the keyboard; the
jobs service then has it Stopped. Screenshots of each step go to the test artifacts folder; with
HUBFLOW_DOC_IMAGES=1 the Jobs panel's also to docs/img/jobs-panel.png for the README."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.async_api import Locator, Page, expect

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
from tests.helpers.hubclient import HubClient, HubProcess

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

WARM_CELL = """\
%%distribute --warm --workers 2 --name demo
import torch, torch.distributed as dist
weights = torch.full((4,), float(dist.get_rank()))
print("loaded on rank", dist.get_rank(), flush=True)"""

BUSY_CELL = """\
%%distribute --warm --workers 2 --name demo
import time
time.sleep(10)
print("still has", weights[0].item(), flush=True)"""

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


@pytest.mark.timeout(900)
def test_a_warm_pool_shows_in_the_jobs_panel_and_its_stop_button_stops_it(
    hub: HubProcess, request: pytest.FixtureRequest
) -> None:
    pool_id = run_on_own_thread(start_and_stop_a_pool(hub, Screenshots(request.node.name)))
    token = HubClient(hub, "alice").login().new_token()
    pool = requests.get(
        f"{hub.jobs_url}api/pools/{pool_id}",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    ).json()
    assert (pool["state"], pool["reason"]) == ("Stopped", "stopped by alice")


async def run_cell(page: Page, cell: Locator, code: str) -> None:
    """Type a cell and run it with Shift+Enter."""
    await Lab(page).type_code(cell, code)
    await page.keyboard.press("Shift+Enter")


async def start_and_stop_a_pool(hub: HubProcess, shots: Screenshots) -> str:
    """Start a pool from a cell, watch it in the panel, stop it there; the pool's id."""
    async with chromium_page(f"{shots.prefix}--failed.png") as page:
        await log_in(page, hub, "alice")
        await start_server(page, hub, "alice", "cpu-small")
        lab = Lab(page)
        await lab.decline_news()
        cell = await lab.new_notebook()
        await page.locator('.jp-SideBar [data-id="hubflow-jobs-panel"]').click()
        panel = page.locator("#hubflow-jobs-panel")
        pools = panel.get_by_role("region", name="Warm pools")
        await expect(pools).to_contain_text("None. %%distribute --warm starts one")

        # a warm cell starts a pool of 2 workers; the panel shows it, idle once the cell is done
        await run_cell(page, cell, WARM_CELL)
        await expect(cell.locator(".jp-OutputArea")).to_contain_text("[rank 1] loaded on rank 1")
        row = pools.get_by_role("listitem")
        await expect(row).to_have_count(1)
        await expect(row.locator(".hf-pool-state")).to_have_text("Idle")
        await expect(row.locator(".hf-pool-workers")).to_have_text("2 workers")
        await expect(row.locator(".hf-pool-gpus")).to_have_text("0 GPUs")
        await expect(row.locator(".hf-pool-age")).to_have_text(re.compile(r"^age \d"))
        idle = row.locator(".hf-pool-idle")
        await expect(idle).to_have_text(re.compile(r"^idle \d+\.\ds of 30m00s$"))
        await expect(idle).not_to_have_text(await idle.text_content() or "")  # it counts on
        pool_id = await row.get_attribute("data-pool-id")
        assert pool_id and re.fullmatch(r"[0-9a-f]{12}", pool_id), pool_id
        await shots.take(page, "warm-pool-idle")

        # the next warm cell runs on the same ranks: Busy while it runs, Idle after
        second = page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(1)
        await run_cell(page, second, BUSY_CELL)
        await expect(row.locator(".hf-pool-state")).to_have_text("Busy")
        await expect(idle).to_be_hidden()
        await shots.take(page, "warm-pool-busy")
        await expect(second.locator(".jp-OutputArea")).to_contain_text("[rank 1] still has 1.0")
        await expect(row.locator(".hf-pool-state")).to_have_text("Idle")

        # Stop, from the keyboard: the pool ends, its row says why, the focus stays in the row
        await expect(row.locator(".hf-pool-name")).to_have_text(f"demo ({pool_id})")
        stop = row.get_by_role("button", name=f"Stop pool demo ({pool_id})")
        await stop.focus()
        await page.keyboard.press("Enter")
        await expect(row.locator(".hf-pool-state")).to_have_text("Stopped")
        await expect(row.locator(".hf-pool-reason")).to_have_text("stopped by alice")
        await expect(stop).to_be_hidden()
        await expect(row).to_be_focused()
        await expect(row.locator(".hf-pool-age")).to_be_hidden()
        await shots.take(page, "warm-pool-stopped")
        return pool_id
