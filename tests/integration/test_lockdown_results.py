"""An admin who reads a hostile user's job runs none of that user's code: the jobs service gives
the pickled result and exception to the job's owner only; an admin's `attach(...).result()`
gets the result as text and a failed job's error as its type, message and traceback text."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hubflow.launcher.api import JobFailed, ResultText, attach
from hubflow.launcher.client import JobsClient
from tests.integration.test_jobs_api import Jobs, started

#: A value and an exception whose unpickling writes a file: what a hostile job returns.
HOSTILE = """
import os
class Trap:
    def __init__(self, path): self.path = path
    def __reduce__(self): return (open, (self.path, "w"))
    def __repr__(self): return "<Trap>"
class TrapError(Exception):
    def __reduce__(self): return (open, ({path!r}, "w"))
"""


def test_an_admin_following_a_hostile_job_runs_none_of_its_code(login, tmp_path: Path) -> None:
    alice = started(login, "alice")
    value_trap, error_trap = tmp_path / "value-trap", tmp_path / "error-trap"
    code = HOSTILE.format(path=str(error_trap))
    ok = alice.submit(code + f"Trap({str(value_trap)!r})", workers=1, framework="python")
    bad = alice.submit(code + "raise TrapError('boom')", workers=1, framework="python")
    assert ok.status_code == bad.status_code == 201, (ok.text, bad.text)
    ok_id, bad_id = ok.json()["id"], bad.json()["id"]
    assert alice.wait(ok_id)["state"] == "Succeeded"
    assert alice.wait(bad_id)["state"] == "Failed"

    admin = Jobs(login("admin"))
    client = JobsClient(admin.url, admin.headers["Authorization"].split(" ", 1)[1])
    result = attach(ok_id, client).result(timeout=60)
    assert isinstance(result, ResultText) and result == "value: <Trap>\n"
    model = admin.call("GET", f"api/jobs/{bad_id}").json()
    assert "exception" not in model["error"]
    assert model["error"]["type"].endswith("TrapError") and "boom" in model["error"]["traceback"]
    with pytest.raises(JobFailed, match="TrapError: boom"):
        attach(bad_id, client).result(timeout=60)
    assert not value_trap.exists() and not error_trap.exists()

    # The owner gets what only the owner's kernel loads.
    answer = alice.call("GET", f"api/jobs/{ok_id}/result").json()
    assert answer["encoding"] == "cloudpickle+base64" and base64.b64decode(answer["result"])
    assert alice.call("GET", f"api/jobs/{bad_id}").json()["error"]["exception"]
