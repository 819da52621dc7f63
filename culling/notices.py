"""Warnings to users whose servers are about to be culled: the culler writes the ones due now
to one JSON file, which the hub shows on its pages (hub/culling_notices.py reads it)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubflow.culling.policy import DueCull


def notice(due: DueCull) -> dict[str, Any]:
    """What the hub needs to warn about one server (JSON)."""
    return {
        "cull_at": due.at.isoformat(),
        "reason": due.reason,
        "idle_timeout": due.policy.idle_timeout,
        "max_age": due.policy.max_age,
    }


def write_notices(path: Path, notices: Mapping[str, Mapping[str, dict[str, Any]]]) -> None:
    """Replace the file at once (user -> server name -> notice), so readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".culling-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        json.dump(notices, stream)
    os.replace(tmp, path)
