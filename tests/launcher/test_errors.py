"""How a failed job's error is shown in IPython: the rank and its own traceback, hubflow's frames
hidden (`_render_traceback_`, which IPython uses instead of the traceback), or everything with
`--traceback full`. The end-to-end view is tests/integration/test_notebook_errors.py."""

from __future__ import annotations

import base64
import re

import cloudpickle
from IPython.core.interactiveshell import InteractiveShell

from hubflow.launcher.api import FRAMES_HIDDEN, full_traceback, job_error

REMOTE = (
    "Traceback (most recent call last):\n"
    '  File "<hubflow cell>", line 3, in load_shard\n'
    "KeyError: 'shard 1 missing'\n"
)


def failed_model() -> dict[str, object]:
    exc = KeyError("shard 1 missing")
    return {
        "id": "3f2a9c1e0b7d",
        "failing_rank": 1,
        "error": {
            "type": "builtins.KeyError",
            "message": str(exc),
            "traceback": REMOTE,
            "exception": base64.b64encode(cloudpickle.dumps(exc)).decode(),
        },
    }


def shown(exc: BaseException) -> str:
    """What IPython prints for `exc` raised in a cell."""
    shell = InteractiveShell()
    shell.user_ns["error"] = exc
    shown_lines: list[str] = []
    shell._showtraceback = lambda etype, evalue, stb: shown_lines.extend(stb)  # type: ignore[method-assign]
    shell.run_cell("raise error")
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(shown_lines))  # without colours


def test_a_failed_rank_is_shown_with_its_rank_and_its_own_frames_only() -> None:
    text = shown(job_error(failed_model()))
    assert text.splitlines()[0] == "KeyError raised on rank 1 of job 3f2a9c1e0b7d"
    assert "[rank 1] Traceback (most recent call last):" in text
    assert "load_shard" in text and "KeyError: 'shard 1 missing'" in text
    assert "launcher/api.py" not in text and "run_cell" not in text
    assert text.splitlines()[-1] == FRAMES_HIDDEN


def test_full_traceback_shows_the_local_frames_and_the_remote_cause() -> None:
    text = shown(full_traceback(job_error(failed_model())))
    assert "RemoteTraceback" in text and "load_shard" in text
    assert "raise error" in text  # the local frame
    assert FRAMES_HIDDEN not in text
