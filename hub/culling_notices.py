"""The culler's warnings on every hub page: the home page with the user's servers, the spawn
page, the token page (JupyterHub's `announcement`, through `template_vars`).

The culler (culling/notices.py) writes the warnings due now to one JSON file beside the hub's
database, shared by the hub and the culler in local mode and in the hub's pod.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jupyterhub_idle_culler import parse_date

from hubflow.profiles.quantities import format_duration

FILE_NAME = "culling-notices.json"
#: A warning this long past its time is not shown (the culling service is not running).
STALE_AFTER = timedelta(minutes=5)


def read_notices(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The notices in force ({} when there is no file or it cannot be read)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def message(server_name: str, item: Mapping[str, Any], now: datetime) -> str:
    """One warning in words (plain text)."""
    at = parse_date(item["cull_at"])
    left = format_duration(max(0.0, (at - now).total_seconds()))
    which = f"Your server “{server_name}”" if server_name else "Your server"
    when = f"{which} will be stopped at {at:%H:%M:%S} UTC (in about {left})"
    if item["reason"] == "age":
        why = f"it reaches the maximum age of {format_duration(item['max_age'])} for its profile"
        keep = "Save your work and start it again afterwards."
    else:
        idle = format_duration(item["idle_timeout"])
        why = f"it has not been used for {idle} (no code running, no terminal or IDE use)"
        keep = "Run code, use a terminal or the IDE to keep it, and save your work."
    return f"{when} because {why}. {keep}"


def announcement(path: Path) -> Any:
    """A `template_vars` value: the HTML warning for the user a hub page is rendered for."""

    def for_user(user: Any) -> str:
        if user is None:
            return ""
        now = datetime.now(timezone.utc)
        mine = read_notices(path).get(user.name, {})
        lines = [
            html.escape(message(name, item, now))
            for name, item in sorted(mine.items())
            if parse_date(item["cull_at"]) > now - STALE_AFTER  # not left by a stopped culler
        ]
        return "<br>".join(lines)

    return for_user
