"""Driving JupyterLab in a user's server from Debian's headless Chromium (Playwright's async API).

The other browser tests use Playwright's sync API, which runs an event loop on the test thread
while it is open, so these helpers use the async API on a thread of their own
(`run_on_own_thread`) and never meet it. The browser is /usr/bin/chromium (`make browser` installs it),
never a Playwright download. Screenshots go to $HUBFLOW_ARTIFACTS/browser, else to
build/test-artifacts/browser; with HUBFLOW_DOC_IMAGES=1 the README's screenshots are refreshed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Locator, Page, async_playwright, expect

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, artifacts_dir
from tests.helpers.hubclient import ROOT, HubProcess

#: How long one step may take on a loaded machine (a server start or a job included), in ms.
STEP_TIMEOUT_MS = 180_000


T = TypeVar("T")


def run_on_own_thread(scenario: Coroutine[Any, Any, T]) -> T:
    """Run a browser scenario to its end on a new thread with an event loop of its own."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="browser") as pool:
        return pool.submit(asyncio.run, scenario).result()


@asynccontextmanager
async def chromium_page(failure_name: str = "failure.png") -> AsyncIterator[Page]:
    """A page of a fresh headless Chromium (no cookies), with generous timeouts; when the block
    fails, the page as it was is saved as `failure_name` in the artifacts folder."""
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": 1440, "height": 900})
            context.set_default_timeout(STEP_TIMEOUT_MS)
            expect.set_options(timeout=STEP_TIMEOUT_MS)
            page = await context.new_page()
            try:
                yield page
            except BaseException:
                await page.screenshot(path=str(artifacts_dir() / failure_name))
                raise
        finally:
            expect.set_options(timeout=None)
            await browser.close()


def publish_doc_image(screenshot: Path, name: str) -> None:
    """With HUBFLOW_DOC_IMAGES=1, copy a screenshot to docs/img/ (the README shows it)."""
    if os.environ.get("HUBFLOW_DOC_IMAGES") == "1":
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, ROOT / "docs" / "img" / name)


class Screenshots:
    """One test's step screenshots, named <test>--<nn>-<step>.png."""

    def __init__(self, test_name: str) -> None:
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name)
        self.taken: list[Path] = []

    async def take(self, page: Page, step: str) -> Path:
        """Save the page as it looks now; the file's path."""
        name = f"{self.prefix}--{len(self.taken) + 1:02d}-{step}.png"
        path = artifacts_dir() / name
        await page.screenshot(path=str(path))
        self.taken.append(path)
        return path


async def log_in(page: Page, hub: HubProcess, username: str, password: str = "hubflow") -> None:
    """Log in through the hub's login form."""
    await page.goto(f"{hub.url}/hub/login")
    await page.locator("#username_input").fill(username)
    await page.locator("#password_input").fill(password)
    await page.locator("#login_submit").click()
    await page.wait_for_url(re.compile(r".*/hub/(spawn|home|spawn-pending).*"))


async def start_server(page: Page, hub: HubProcess, username: str, profile: str) -> None:
    """Pick a profile on the spawn page, start, and wait for JupyterLab to be up."""
    await page.goto(f"{hub.url}/hub/spawn")
    await page.locator(f"input[name=profile][value={profile}]").check()
    await page.locator("#spawn_form [type=submit]").click()
    await page.wait_for_url(re.compile(rf".*/user/{username}/lab.*"))
    await expect(page.locator("#jp-main-dock-panel")).to_be_visible()


class Lab:
    """The JupyterLab page of a running server."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def decline_news(self) -> None:
        """Answer JupyterLab's "notified about official Jupyter news?" toast with No whenever
        it shows up (so that it hides nothing the test looks at)."""
        toast = self.page.locator(".Toastify__toast").filter(has_text="official Jupyter news")
        await self.page.add_locator_handler(
            toast, lambda: toast.get_by_role("button", name="No", exact=True).click()
        )

    async def new_notebook(self) -> Locator:
        """Open a notebook from the launcher; its first cell, once its kernel is connected and
        idle (the status bar names it: the notebook's indicator says idle before that, and a
        cell run then is dropped)."""
        await self.page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
        notebook = self.page.locator(".jp-NotebookPanel:visible")
        await expect(notebook.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
            "data-status", "idle"
        )
        kernel = self.page.locator(".jp-StatusBar-TextItem", has_text=" | ")
        await expect(kernel).to_have_text(re.compile(r"^(?!No Kernel).+ \| Idle$"))
        return notebook.locator(".jp-Cell").first

    async def type_code(self, cell: Locator, code: str) -> None:
        """Type code into a cell's editor (as a paste: no auto-closed brackets or indents)."""
        await cell.locator(".cm-content").click()
        await self.page.keyboard.insert_text(code)

    def cell_toolbar_button(self, cell: Locator, command: str) -> Locator:
        """A button of the cell's toolbar, by the command it runs."""
        return cell.locator(f'.jp-cell-toolbar [data-command="{command}"]')

    def notification(self, pattern: str) -> Locator:
        """A notification toast whose text matches the pattern."""
        return self.page.locator(".Toastify__toast").filter(has_text=re.compile(pattern))
