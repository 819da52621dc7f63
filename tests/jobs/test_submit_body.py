"""A submit body parsed as it streams in (jobs/submitbody.py): the same request as parsing it
whole, however it is cut into chunks; refusals named as they are found; no chunk costs more
than milliseconds, whatever the payload's size."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from hubflow.jobs.models import RequestError, parse_job_request, parse_json_body
from hubflow.jobs.quota import Refusal
from hubflow.jobs.submitbody import SubmitBody

LIMIT = 256 * 2**20


def streamed(body: bytes, chunk: int, limit: int = LIMIT) -> SubmitBody:
    parser = SubmitBody(limit)
    for start in range(0, len(body), chunk):
        parser.feed(body[start : start + chunk])
    return parser


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 65536])
def test_any_cut_gives_the_request_parsed_whole(chunk: int) -> None:
    payload = os.urandom(3000)
    text = base64.b64encode(payload).decode()
    body = (
        '{"server_name": "a\\"b\\\\\\u00e9 [{", "workers" :2, "payload" : "'
        + text.replace("/", "\\/")  # the one escape a JSON writer may put in base64
        + '", "name": "n", "client_key": "k-1"}'
    ).encode()
    whole = parse_job_request(parse_json_body(body.decode()))
    assert whole.payload == payload and whole.server_name == 'a"b\\é [{'
    assert streamed(body, chunk).request() == whole


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"payload": "AAA"}', "payload"),
        (b'{"payload": "A=AA"}', "payload"),
        (b'{"payload": "AA==AAAA"}', "payload"),
        (b'{"payload": "AA\\nA"}', "payload"),
        (b'{"payload": "AA\\"AA"}', "payload"),
        (b'{"payload": "QUJD\\\\"}', "payload"),
        (b'{"payload": "\\u0041AAA"}', "payload"),
        (b'{"payload": "QUJD", "payload": "QUJD"}', "payload"),
        (b'{"payload": ""}', "payload"),
        (b'{"payload": "QUJD', "body"),
        (b'{"payload": "QUJD"', "body"),
        (b'["payload", "QUJD"]', "body"),
        (b"[" * 100_000, "body"),
        (b'{"payload": "QUJD", "name": "\xff"}', "body"),
        (b'{"payload": "QU\xffJD"}', "body"),
        (b'{"payload": "QU\xc3\xa9JD"}', "payload"),
        (b'{"payload": "QUJD", "workers": 1e400}', "workers"),
    ],
)
def test_a_bad_body_is_refused_by_name(body: bytes, field: str) -> None:
    with pytest.raises(RequestError) as caught:
        streamed(body, 3).request()
    assert caught.value.field == field


def test_a_payload_past_the_backends_limit_is_413_while_it_arrives() -> None:
    parser = SubmitBody(1000)
    parser.feed(b'{"payload": "' + b"A" * 1336)
    with pytest.raises(Refusal) as caught:
        parser.feed(b"A" * 8)
    assert (caught.value.status, caught.value.field) == (413, "payload")
    assert "save large data in the workspace" in str(caught.value)


def test_the_other_fields_are_at_most_their_overhead() -> None:
    parser = SubmitBody(LIMIT, max_rest=1024)
    with pytest.raises(Refusal) as caught:
        parser.feed(b'{"payload": "QUJD", "name": "' + b"x" * 1024)
    assert (caught.value.status, caught.value.field) == (413, "body")
    # a large string anywhere but the payload is refused the same way
    with pytest.raises(Refusal):
        SubmitBody(LIMIT, max_rest=1024).feed(b'{"other": {"payload": "' + b"A" * 2048)


def test_a_99_mib_payload_costs_milliseconds_per_chunk() -> None:
    payload = os.urandom(99 * 2**20)
    body = json.dumps({"payload": base64.b64encode(payload).decode()}).encode()
    parser, worst = SubmitBody(LIMIT), 0.0
    for start in range(0, len(body), 65536):
        began = time.thread_time()
        parser.feed(body[start : start + 65536])
        worst = max(worst, time.thread_time() - began)
    del body
    began = time.thread_time()
    request = parser.request()
    worst = max(worst, time.thread_time() - began)
    assert request.payload == payload
    # CPU time, which a busy machine does not stretch: json.loads of the whole body took about
    # 0.2 s at once, the base64 as long again; a chunk takes about 0.2 ms, the end (joining
    # the payload's pieces) a copy of it
    assert worst < 0.1, worst
