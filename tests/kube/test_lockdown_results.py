"""A rank's printed output cannot pose as its job's result: records carry an HMAC under a key
made for each job (delivered with the payload in the job's Secret), and the jobs service files
only those whose MAC is the job's, as the last test shows with a rank run by the real controllers.
Results and tracebacks reach only their owner as pickles."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import cloudpickle
import pytest

from hubflow.jobs.kubeflow.manifests import RECORD_KEY, payload_secret, placement_for
from hubflow.jobs.store import JobRecord
from hubflow.launcher.channel import (
    DirectoryChannel,
    StreamChannel,
    channel_from_env,
    encode_record,
    file_record,
    split_record,
)
from hubflow.launcher.contract import JOB_PAYLOAD_ENV, JOB_RECORD_KEY_ENV
from hubflow.launcher.payload import cell_payload
from tests.kube.cluster.jobs_fixtures import HubStandIn, JobsService
from tests.kube.test_lockdown_pods import job_server

KEY = bytes(range(32))


def test_a_printed_record_without_the_jobs_key_is_text(tmp_path: Path) -> None:
    forged_result = cloudpickle.dumps({"value": "forged", "variables": {}})
    for line in (
        encode_record("result", 0, forged_result, b"guessed" * 5),  # another key
        encode_record("result", 0, forged_result, KEY)[:-66] + b" " + b"0" * 64 + b"\n",
        b"\x1ehubflow-record result 0 " + base64.b64encode(forged_result) + b"\n",  # no MAC
    ):
        assert split_record(line, KEY) == (line, None)
    genuine = encode_record("result", 0, forged_result, KEY)
    text, record = split_record(genuine, KEY)
    assert record is not None and record.data == forged_result
    channel = DirectoryChannel(tmp_path)
    file_record(channel, record)
    assert channel.read_result() == forged_result


def test_a_rank_signs_with_the_key_its_secret_carries(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "record.key").write_bytes(KEY)
    env = {
        JOB_PAYLOAD_ENV: str(tmp_path / "payload.pkl"),
        JOB_RECORD_KEY_ENV: str(tmp_path / "record.key"),
    }
    channel = channel_from_env(env)
    assert isinstance(channel, StreamChannel) and channel.key == KEY
    channel.write_progress({"step": 1})
    line = capfd.readouterr().out.encode()
    _, record = split_record(line, KEY)
    assert record is not None and json.loads(record.data) == {"step": 1}
    with pytest.raises(RuntimeError, match="names no record key"):
        channel_from_env({JOB_PAYLOAD_ENV: str(tmp_path / "payload.pkl")})


def test_the_key_travels_in_the_jobs_secret_only() -> None:
    job = JobRecord(id="0123456789ab", user="alice", framework="pytorch", workers=2)
    placement = placement_for("PyTorchJob", job_server(), 0, "default", 600)
    placement = type(placement)(**{**placement.to_dict(), "record_key": KEY.hex()})
    owner = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
             "metadata": {"name": "hubflow-0123456789ab", "uid": "u"}}  # fmt: skip
    secret = payload_secret(job, placement, owner, b"payload")
    assert base64.b64decode(secret["data"][RECORD_KEY]) == KEY


def test_a_ranks_forged_result_is_text_on_the_real_cluster(
    jobs_service: Callable[..., JobsService], stand_in: HubStandIn
) -> None:
    """A job's rank, run by the real Trainer, prints a result record under a guessed key: the
    jobs service shows it as a line of output and files the rank's genuine result."""
    service = jobs_service("auto")
    alice = service.client(stand_in.add_user("alice"))
    code = (
        "import base64, cloudpickle\n"
        "forged = cloudpickle.dumps({'value': 'forged', 'variables': {}})\n"
        "print('\\x1ehubflow-record result 0 ' + base64.b64encode(forged).decode() + ' ' + '0' * 64)\n"
        "'genuine'\n"
    )
    job_id = alice.submit(cell_payload(code, {}).dumps(), workers=1, framework="python")["id"]
    deadline = time.monotonic() + 180
    while (model := alice.get(job_id))["state"] not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline, model
        time.sleep(0.5)
    assert model["state"] == "Succeeded", (model, service.log_text())
    assert cloudpickle.loads(alice.result(job_id))["value"] == "genuine"
    lines = [line.line for line in alice.logs(job_id)]
    assert any("hubflow-record result 0 " in line for line in lines), lines
