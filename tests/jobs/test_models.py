"""Submission bodies are checked field by field; unknown fields are refused by name."""

from __future__ import annotations

import base64

import pytest

from hubflow.jobs.models import RequestError, parse_job_request

PAYLOAD = base64.b64encode(b"payload").decode()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"payload": PAYLOAD, "workers": 0}, "workers", "workers: must be an integer ≥ 1"),
        ({"payload": PAYLOAD, "workers": "2"}, "workers", "must be an integer ≥ 1"),
        ({"payload": PAYLOAD, "workers": True}, "workers", "must be an integer ≥ 1"),
        ({"payload": PAYLOAD, "gpus_per_worker": -1}, "gpus_per_worker", "must be an integer ≥ 0"),
        ({"payload": PAYLOAD, "framework": "jax"}, "framework", "must be one of pytorch"),
        ({"payload": PAYLOAD, "colour": "red"}, "colour", "colour: unknown field"),
        ({"workers": 2}, "payload", "payload: required"),
        ({"payload": "not base64!"}, "payload", "must be base64"),
        ({"payload": PAYLOAD, "name": "../../etc"}, "name", "must be 1-63"),
        ([1, 2], "body", "must be a JSON object"),
    ],
)
def test_bad_bodies_name_the_field(body: object, field: str, message: str) -> None:
    with pytest.raises(RequestError, match=message) as caught:
        parse_job_request(body)
    assert caught.value.field == field


def test_a_good_body_with_defaults() -> None:
    request = parse_job_request({"payload": PAYLOAD, "workers": 2, "gpus_per_worker": 1})
    assert (request.payload, request.framework, request.total_gpus) == (b"payload", "pytorch", 2)
