"""%%distribute's arguments and early refusals, in a real IPython shell (nothing is submitted:
no jobs API is configured, so reaching submission would raise a different error)."""

from __future__ import annotations

import threading

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from hubflow.launcher.payload import PayloadError


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> InteractiveShell:
    monkeypatch.delenv("HUBFLOW_JOBS_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hubflow.launcher")
    return ip


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--workers 0", "argument --workers/-n: must be an integer ≥ 1, not '0'"),
        ("--workers two", "must be an integer ≥ 1, not 'two'"),
        ("--workers ²", "must be an integer ≥ 1, not '²'"),
        ("--workers " + "9" * 5000, "must be an integer ≥ 1, not '9999"),
        ("", "the following arguments are required: --workers"),
        ("--workers 2 --framework jax", "argument --framework: invalid choice: 'jax'"),
        ("--workers 2 --gpus-per-worker -1", "must be an integer ≥ 0, not '-1'"),
        ("--workers 2 --bogus", "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_are_refused_before_submission(
    shell: InteractiveShell, line: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        shell.run_cell_magic("distribute", line, "x = 1")


def test_unpicklable_variable_is_refused_before_submission(shell: InteractiveShell) -> None:
    shell.user_ns["lock"] = threading.Lock()
    with pytest.raises(PayloadError, match="'lock'"):
        shell.run_cell_magic("distribute", "--workers 2", "with lock:\n    pass")


def test_a_valid_cell_goes_on_to_look_for_the_jobs_api(shell: InteractiveShell) -> None:
    shell.user_ns["x"] = 1
    with pytest.raises(RuntimeError, match="HUBFLOW_JOBS_URL and JUPYTERHUB_API_TOKEN not set"):
        shell.run_cell_magic("distribute", "--workers 2 --push x --pull y", "y = 1")


def test_job_magic_refuses_unknown_actions(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="invalid choice: 'explode'"):
        shell.run_line_magic("job", "explode abc")
