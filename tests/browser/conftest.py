"""Browser fixtures: Debian's headless Chromium driven by Playwright, and step screenshots.

The browser is the system's /usr/bin/chromium (`make browser` installs it); Playwright's own
browser downloads are never used. Screenshots go to $HUBFLOW_ARTIFACTS/browser, else to
build/test-artifacts/browser, named after the test and the step; with HUBFLOW_DOC_IMAGES=1 the
README's spawn page screenshot (docs/img/spawn-page.png) is refreshed too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, artifacts_dir
from tests.helpers.hubclient import ROOT, HubProcess

#: How long a step may take on a loaded machine (a server start included), in milliseconds.
STEP_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver, once per test module: its sync API runs an event loop on the test
    thread while it is open, which would break the asyncio tests that come after."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium, shared by the module's tests (each test gets its own context)."""
    chromium = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in a fresh context (no cookies), with generous timeouts."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """screenshot(page, "step") saves the whole page as <test>--<nn>-<step>.png; returns the path.

    screenshot(page, "step", doc_image="name.png") also refreshes docs/img/name.png (the README
    shows it) when HUBFLOW_DOC_IMAGES=1.
    """
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    taken: list[Path] = []

    def shoot(tab: Page, step: str, doc_image: str | None = None) -> Path:
        name = f"{test}--{len(taken) + 1:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', step)}.png"
        path = artifacts_dir() / name
        tab.screenshot(path=str(path), full_page=True)
        taken.append(path)
        if doc_image and os.environ.get("HUBFLOW_DOC_IMAGES") == "1":
            (ROOT / "docs" / "img" / doc_image).write_bytes(path.read_bytes())
        return path

    return shoot


@pytest.fixture
def log_in() -> Callable[[Page, HubProcess, str], None]:
    """log_in(page, hub, "alice"): log in through the hub's login form with the keyboard."""

    def enter(tab: Page, hub: HubProcess, username: str) -> None:
        tab.goto(f"{hub.url}/hub/login")
        tab.get_by_label("Username").fill(username)
        tab.get_by_label("Password").fill("hubflow")
        tab.get_by_label("Password").press("Enter")
        tab.wait_for_url(lambda url: "/hub/login" not in url)

    return enter
