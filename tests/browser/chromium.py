"""The browser every browser test drives: Debian's headless Chromium (`make browser` installs
it; Playwright's own browser downloads are never used), and where screenshots go."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers.hubclient import ROOT

CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and nothing that reaches out to the network on its own (this machine has none).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts_dir() -> Path:
    """Where browser screenshots go: $HUBFLOW_ARTIFACTS/browser, else build/test-artifacts/browser."""
    base = os.environ.get("HUBFLOW_ARTIFACTS")
    folder = Path(base) / "browser" if base else ROOT / "build" / "test-artifacts" / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
