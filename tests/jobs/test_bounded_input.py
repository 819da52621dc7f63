"""Every value a jobs API request carries is bounded before it is parsed and refused by name:
bodies, query parameters, and the log reader's line length."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import pytest

from hubflow.jobs.backend import JobFiles
from hubflow.jobs.kubeflow.logs import LineBuffer, RankLog
from hubflow.jobs.limits import Limits, RequestPace, follow_slots, submit_body_bytes
from hubflow.jobs.models import (
    BASE64_SLICE,
    RequestError,
    decode_base64,
    decode_body,
    parse_job_request,
    parse_json_body,
)
from hubflow.jobs.quota import Refusal
from hubflow.jobs.validation import parse_count, parse_flag, parse_offsets, parse_user
from hubflow.launcher.channel import (
    RECORD_MARKER,
    DirectoryChannel,
    encode_record,
    split_record,
)
from hubflow.launcher.contract import MAX_PAYLOAD_BYTES

PAYLOAD = base64.b64encode(b"payload").decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payload": PAYLOAD, "name": "ok\n"}, "name"),
        ({"payload": PAYLOAD, "name": "ok\x00"}, "name"),
        ({"payload": PAYLOAD, "name": "x" * 64}, "name"),
        ({"payload": PAYLOAD, "workers": 10**4000}, "workers"),
        ({"payload": PAYLOAD, "workers": 1025}, "workers"),
        ({"payload": PAYLOAD, "workers": 2.0}, "workers"),
        ({"payload": PAYLOAD, "gpus_per_worker": 65}, "gpus_per_worker"),
        ({"payload": PAYLOAD, "server_name": "a/b"}, "server_name"),
        ({"payload": PAYLOAD, "server_name": "x" * 256}, "server_name"),
        ({"payload": PAYLOAD, "server_name": "tab\there"}, "server_name"),
        ({"payload": PAYLOAD, "framework": ["pytorch"]}, "framework"),
        ({"payload": [PAYLOAD]}, "payload"),
        ({"payload": PAYLOAD, "x" * 10**6: 1}, "x" * 64 + "..."),
    ],
)
def test_a_bad_field_is_refused_by_name(body: dict[str, object], field: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_job_request(body)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "raw",
    [
        b'{"payload": NaN}',
        b'{"workers": Infinity}',
        b"[" * 100_000,
        b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}",
        b'{"payload": "\xff"}',
        b'{"workers": ' + b"9" * 5000 + b"}",
        b"not json",
    ],
)
def test_a_bad_body_is_refused_as_the_body_quickly(raw: bytes) -> None:
    start = time.perf_counter()
    with pytest.raises(RequestError) as caught:
        parse_job_request(parse_json_body(decode_body(raw)))
    assert time.perf_counter() - start < 0.05
    assert caught.value.field == "body"


def test_the_submit_body_limit_holds_the_largest_payload_in_base64() -> None:
    largest = json.dumps({"payload": "A" * (4 * -(-MAX_PAYLOAD_BYTES // 3)), "name": "x" * 63})
    assert len(largest) <= submit_body_bytes(MAX_PAYLOAD_BYTES)
    assert submit_body_bytes(MAX_PAYLOAD_BYTES) < 4 * MAX_PAYLOAD_BYTES // 3 + 2**20


@pytest.mark.parametrize("text", ["²", "٣", "-1", "+1", "1e3", " 1", "", "9" * 19, "9" * 5000])
def test_a_count_parameter_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_count(text, "offset")
    assert caught.value.field == "offset"


def test_a_rank_is_below_the_number_of_workers() -> None:
    assert parse_count("1", "rank", 2) == 1
    with pytest.raises(RequestError, match="from 0 to 1"):
        parse_count("2", "rank", 2)


@pytest.mark.parametrize(
    "text", ["0:²", "²:0", "0:" + "9" * 5000, "0", "0:1:2", "5:0", "x" * 50_000]
)
def test_bad_offsets_are_refused_by_name(text: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_offsets(text, 2)
    assert caught.value.field == "offsets"


def test_offsets_flags_and_users() -> None:
    assert parse_offsets("0:120,1:80,", 2) == {0: 120, 1: 80}
    assert (parse_flag("1", "follow"), parse_flag("false", "follow")) == (True, False)
    with pytest.raises(RequestError, match="follow"):
        parse_flag("maybe", "follow")
    assert parse_user("alice") == "alice"
    for bad in ("", "a\nb", "x" * 256):
        with pytest.raises(RequestError, match="user"):
            parse_user(bad)


def test_one_follow_past_the_limit_is_refused_with_429_naming_it() -> None:
    slots = follow_slots(Limits(max_log_follows=2))
    for user in ("alice", "alice", "bob"):
        slots.acquire(user)
    with pytest.raises(Refusal) as caught:
        slots.acquire("alice")
    assert (caught.value.status, caught.value.quota, caught.value.limit) == (
        429,
        "max_log_follows",
        2,
    )
    assert "HUBFLOW_JOBS_MAX_LOG_FOLLOWS" in str(caught.value)
    for user in ("alice", "alice", "bob"):
        slots.release(user)
    assert not slots.open
    slots.acquire("alice")
    assert slots.open["alice"] == 1


def test_a_line_longer_than_the_limit_comes_in_pieces_before_it_ends(tmp_path: Path) -> None:
    files = JobFiles(tmp_path)
    log = files.channel("job").rank_log_path(0)
    log.parent.mkdir(parents=True)
    log.write_bytes(b"short\n" + b"x" * (3 * 1024 + 10))  # still being written: no newline yet
    chunk = files.read_log("job", 0, 0, final=False, max_line=1024)
    assert [len(line) for _, line in chunk.lines] == [5, 1024, 1024, 1024]
    assert chunk.next_offset == 6 + 3 * 1024
    with log.open("ab") as f:
        f.write(b"yz\r\nnext\n")
    rest = files.read_log("job", 0, chunk.next_offset, final=False, max_line=1024)
    assert [line for _, line in rest.lines] == ["x" * 10 + "yz", "next"]
    assert rest.next_offset == log.stat().st_size


def test_a_line_of_whole_pieces_is_sent_whole_and_its_end_adds_no_empty_line(
    tmp_path: Path,
) -> None:
    files = JobFiles(tmp_path)
    log = files.channel("job").rank_log_path(0)
    log.parent.mkdir(parents=True)
    log.write_bytes(b"y" * 2048)  # two whole pieces, the line not ended yet
    first = files.read_log("job", 0, 0, final=False, max_line=1024)
    assert ([len(line) for _, line in first.lines], first.next_offset) == ([1024, 1024], 2048)
    with log.open("ab") as f:
        f.write(b"\nafter\n")
    rest = files.read_log("job", 0, first.next_offset, final=False, max_line=1024)
    assert [line for _, line in rest.lines] == ["after"]
    assert rest.next_offset == log.stat().st_size


def test_the_kubeflow_log_buffer_holds_at_most_a_line_limit_of_text() -> None:
    buffer, chunk = LineBuffer(max_line=100_000), b"x" * 65536
    out = []
    for _ in range(64 * 16):  # 64 MiB of one line that does not end
        out += buffer.feed(chunk)
        assert len(buffer.partial) <= 100_000
    out += buffer.feed(b"end\nnext")
    assert b"".join(out) == b"x" * 2**26 + b"end\n"
    assert all(len(piece) <= 100_000 + 65536 for piece in out)
    assert bytes(buffer.partial) == b"next"


def test_a_record_line_waits_whole_for_its_end_up_to_its_limit() -> None:
    key = b"k" * 32
    record = encode_record("result", 0, b"r" * 300_000, key)
    buffer = LineBuffer(max_line=1024, max_record=len(record))
    out = buffer.feed(b"text before ")
    for start in range(0, len(record), 4096):
        out += buffer.feed(record[start : start + 4096])
    assert out == [b"text before " + record]  # whole: its MAC is checked on all of it
    text, found = split_record(out[0], key)
    assert (text, found and found.data) == (b"text before ", b"r" * 300_000)


def test_a_record_line_past_its_limit_is_text_let_through() -> None:
    key = b"k" * 32
    record = encode_record("result", 0, b"r" * 300_000, key)
    buffer = LineBuffer(max_line=1024, max_record=len(record) - 10_000)
    out = []
    for start in range(0, len(record), 4096):
        out += buffer.feed(record[start : start + 4096])
        assert len(buffer.partial) <= len(record) - 10_000 + 4096
    assert len(out) > 1 and b"".join(out) == record
    assert all(split_record(piece, key)[1] is None for piece in out)


def test_the_kubeflow_log_buffer_is_linear_in_a_long_record() -> None:
    def seconds(megabytes: int) -> float:
        buffer, chunk = LineBuffer(max_record=2**30), RECORD_MARKER + b"x" * (65536 - 16)
        start = time.perf_counter()
        for _ in range(megabytes * 16):
            assert buffer.feed(chunk) == []
        assert len(buffer.feed(b"end\nnext")[0]) == megabytes * 2**20 + 4
        return time.perf_counter() - start

    # a buffer searching the whole line at each chunk would scan about 32 GiB here (minutes)
    assert min(seconds(64) for _ in range(2)) < 5


@pytest.mark.parametrize("text", ["A", "A===", "====", "AA=A", "AB==AAAA", "AA\nA", "AAA\u00e9"])
def test_base64_is_strict(text: str) -> None:
    with pytest.raises(RequestError, match="must be base64"):
        decode_base64(text, "payload")


def test_base64_is_decoded_in_slices_like_at_once() -> None:
    data = bytes(range(256)) * (BASE64_SLICE // 64 + 7)
    text = base64.b64encode(data).decode()
    assert len(text) > 2 * BASE64_SLICE
    assert decode_base64(text, "payload") == data
    with pytest.raises(RequestError):
        decode_base64(text[:BASE64_SLICE] + "=" + text[BASE64_SLICE + 1 :], "payload")


def test_a_record_after_a_long_line_let_through_ends_that_line(tmp_path: Path) -> None:
    key = b"k" * 32
    channel = DirectoryChannel(tmp_path)
    follower = RankLog(None, "ns", "pod", "main", 0, channel, key)  # type: ignore[arg-type]
    buffer, out = LineBuffer(max_line=1024), io.BytesIO()
    stream = b"y" * 5000 + encode_record("summary", 0, b"42", key) + b"after\n"
    for start in range(0, len(stream), 1000):
        for line in buffer.feed(stream[start : start + 1000]):
            follower._handle(out, line)
    assert out.getvalue() == b"y" * 5000 + b"\nafter\n"
    assert channel.read_summary() == "42"


def test_requests_past_the_rate_wait_their_turn_then_are_refused() -> None:
    pace = RequestPace(rate=10, burst=5, max_wait=1.0)
    now = 100.0
    assert [pace.turn("alice", now) for _ in range(6)] == [0.0] * 6  # the burst, and one
    waits = [pace.turn("alice", now) for _ in range(10)]
    assert waits == pytest.approx([0.1 * n for n in range(1, 11)])  # one every 0.1 s
    with pytest.raises(Refusal) as caught:
        pace.turn("alice", now)  # would wait 1.1 s
    assert (caught.value.status, caught.value.quota, caught.value.limit) == (
        429,
        "max_request_rate",
        10,
    )
    assert "HUBFLOW_JOBS_MAX_REQUEST_RATE" in str(caught.value)
    assert pace.turn("bob", now) == 0.0  # another user's requests go at once
    assert pace.turn("alice", now + 1.0) == pytest.approx(0.1)  # the refusal took no turn
    assert pace.turn("alice", now + 3.0) == 0.0  # 2 s later, her bucket has refilled
    unlimited = RequestPace(rate=0, burst=1, max_wait=0)
    assert {unlimited.turn("alice", now) for _ in range(1000)} == {0.0}


def test_a_requests_work_is_charged_to_the_callers_next_requests() -> None:
    pace = RequestPace(rate=10, burst=0, max_wait=60)
    assert pace.turn("alice", 0.0) == 0.0
    pace.charge("alice", 20, 0.0)  # a list of 200 jobs, say: as 20 more requests
    assert pace.turn("alice", 0.0) == pytest.approx(2.1)
    assert pace.turn("bob", 0.0) == 0.0
