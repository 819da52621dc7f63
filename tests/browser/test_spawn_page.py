"""The spawn page in headless Chromium, as a new user meets it: availability, keyboard-only choice,
progress, JupyterLab; a profile that cannot start; a server-side refusal next to its field."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from hubflow.hub.settings import DEFAULT_PROFILES
from tests.helpers.hubclient import HubClient, HubProcess

A100 = "NVIDIA-A100-SXM4-80GB"
TWO_GPUS = f"0:{A100},1:{A100}"


def tab_to(page: Page, selector: str, presses: int = 40) -> None:
    """Press Tab until the focused element matches `selector` (keyboard only, as a person would)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def focused(page: Page, attribute: str) -> str | None:
    """An attribute of the focused element."""
    return page.evaluate("(a) => document.activeElement.getAttribute(a)", attribute)


def card(page: Page, slug: str):  # noqa: ANN201 (a Playwright Locator)
    """A profile's card."""
    return page.locator(f"#profile-{slug}")


def test_keyboard_only_gpu_spawn_watches_progress_and_lands_in_jupyterlab(
    hub_factory: Callable[..., HubProcess],
    page: Page,
    log_in: Callable[[Page, HubProcess, str], None],
    screenshot: Callable[..., Path],
) -> None:
    # The profiles hubflow ships (what `make demo` shows), on a machine with two A100s.
    hub = hub_factory(profiles=[str(DEFAULT_PROFILES)], extra_env={"HUBFLOW_GPUS": TWO_GPUS})
    log_in(page, hub, "alice")
    expect(page.get_by_role("heading", name="Start a server")).to_be_visible()
    expect(page.locator("#hubflow-gpus")).to_contain_text("NVIDIA A100 SXM4 80GB: 2 of 2 free")
    expect(card(page, "multi-gpu")).to_contain_text("2 of 2 A100 GPUs free now")
    screenshot(page, "spawn-page")

    # Keyboard only: Tab into the profile cards, arrows to the multi-GPU profile.
    tab_to(page, 'input[name="profile"]')
    assert focused(page, "value") == "small-cpu"
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    assert focused(page, "value") == "multi-gpu"
    expect(page.locator("#profile-radio-multi-gpu")).to_be_checked()
    expect(page.locator("#profile-details-multi-gpu")).to_be_visible()
    expect(page.locator("#profile-details-small-cpu")).to_be_hidden()
    # The focused card is outlined, and its radio tells screen readers what it offers.
    outline = card(page, "multi-gpu").evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline == "solid", outline
    described = page.locator("#profile-radio-multi-gpu").get_attribute("aria-describedby")
    assert "profile-resources-multi-gpu" in (described or "")
    screenshot(page, "gpu-profile-chosen-by-keyboard", doc_image="spawn-page.png")

    # On to its choices: the IDE, the GPU count (2 of 2 or 4), the image version, then Start.
    page.keyboard.press("Tab")
    assert focused(page, "name") == "profile-option-multi-gpu--ide"
    tab_to(page, 'select[name="profile-option-multi-gpu--gpu"]')
    expect(page.locator('select[name="profile-option-multi-gpu--gpu"]')).to_have_value("2")
    tab_to(page, 'select[name="profile-option-multi-gpu--image-version"]')
    tab_to(page, 'button[type="submit"]')
    page.keyboard.press("Enter")

    # The progress page tells each step in words, then the browser lands in JupyterLab.
    page.wait_for_url(re.compile(r".*/hub/spawn-pending/alice.*|.*/user/alice/lab.*"))
    if "/spawn-pending/" in page.url:
        expect(page.locator("#progress-log")).to_contain_text("Profile 'Multi-GPU' with JupyterLab")
        expect(page.locator("#progress-message")).to_have_attribute("aria-live", "polite")
        screenshot(page, "progress")
    page.wait_for_url(re.compile(r".*/user/alice/lab.*"))
    expect(page.locator(".jp-Launcher")).to_be_visible()
    screenshot(page, "jupyterlab")

    # The server holds both GPUs: the next spawn page says none is free.
    page.goto(f"{hub.url}/hub/spawn/alice/second")
    expect(page.locator("#hubflow-gpus")).to_contain_text("0 of 2 free")
    expect(card(page, "gpu-1")).to_contain_text(
        "Cannot start now: only 0 of 2 A100 GPUs are free, it needs 1"
    )


def test_profiles_that_cannot_start_say_why_before_the_click(
    hub_factory: Callable[..., HubProcess],
    page: Page,
    log_in: Callable[[Page, HubProcess, str], None],
    screenshot: Callable[[Page, str], Path],
) -> None:
    hub = hub_factory(extra_env={"HUBFLOW_GPUS": "none"})
    log_in(page, hub, "alice")
    gpu_card = card(page, "gpu-a100")
    expect(gpu_card).to_contain_text("Cannot start now: no A100 GPU here")
    expect(page.locator("#profile-radio-gpu-a100")).to_be_disabled()
    reason = page.locator("#profile-reason-gpu-a100")
    described = page.locator("#profile-radio-gpu-a100").get_attribute("aria-describedby") or ""
    assert "profile-reason-gpu-a100" in described and reason.is_visible()
    # Arrow keys pass over it: from Large CPU they wrap round to Small CPU.
    tab_to(page, 'input[name="profile"]')
    page.keyboard.press("ArrowDown")
    assert focused(page, "value") == "cpu-large"
    page.keyboard.press("ArrowDown")
    assert focused(page, "value") == "cpu-small"
    screenshot(page, "no-gpu-here")

    # Quota: bob may run one server; with it running, a second one cannot start, and says so.
    HubClient(hub, "bob").login().spawn({"profile": "cpu-small"})
    page.context.clear_cookies()
    log_in(page, hub, "bob")
    page.goto(f"{hub.url}/hub/spawn/bob/second")
    for slug in ("cpu-small", "cpu-large"):
        expect(card(page, slug)).to_contain_text(
            "Cannot start now: quota: you already run 1 server, the default limit is 1"
        )
    expect(page.locator("#hubflow-none-startable")).to_be_visible()
    expect(page.get_by_role("button", name="Start")).to_be_disabled()
    screenshot(page, "quota-reached")


def test_server_side_refusals_show_next_to_their_field(
    hub_factory: Callable[..., HubProcess],
    page: Page,
    log_in: Callable[[Page, HubProcess, str], None],
    screenshot: Callable[[Page, str], Path],
) -> None:
    hub = hub_factory(extra_env={"HUBFLOW_GPUS": f"0:{A100}"})
    log_in(page, hub, "alice")

    # A free-text choice the server refuses (the browser's own pattern check is taken away,
    # as in a browser that does not check): the message sits under the field, which is
    # marked invalid, keeps what was typed and has the focus.
    page.get_by_label("Flavour", exact=True).select_option("unlisted-choice")
    text = page.get_by_label("Custom flavour")
    expect(text).to_be_visible()
    text.evaluate("el => el.removeAttribute('pattern')")
    text.fill("abc!")
    text.press("Enter")
    field = page.locator('[data-field="profile-option-cpu-small--flavour--unlisted-choice"]')
    expect(field.locator(".hubflow-field-error")).to_contain_text("lowercase letters only")
    text = page.get_by_label("Custom flavour")
    expect(text).to_have_value("abc!")
    expect(text).to_have_attribute("aria-invalid", "true")
    expect(text).to_be_focused()
    assert "hubflow-error-" in (text.get_attribute("aria-describedby") or "")
    screenshot(page, "refused-free-text")

    # The only GPU is taken between the page view and the click: the refusal is shown at the
    # profile choice, and the GPU profile now says why it cannot start.
    page.goto(f"{hub.url}/hub/spawn")
    expect(card(page, "gpu-a100")).to_contain_text("1 of 1 A100 GPUs free now")
    page.locator("#profile-radio-gpu-a100").check()
    HubClient(hub, "admin").login().spawn({"profile": "gpu-a100"})
    page.get_by_role("button", name="Start").click()
    profile_error = page.locator('fieldset[data-field="profile"] > .hubflow-field-error')
    expect(profile_error).to_contain_text("not enough free GPUs")
    expect(card(page, "gpu-a100")).to_contain_text("Cannot start now")
    screenshot(page, "refused-gpu-taken")
