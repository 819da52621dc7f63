"""The launcher's client and the jobs service's per-user pacing: a paced call (429 naming
max_request_rate) is sent again after its Retry-After; any other 429 is the answer. And a
service that is restarting: a read waits for it, a write is not sent twice."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from hubflow.launcher.client import JobsAPIError, JobsClient


class _Service(BaseHTTPRequestHandler):
    """Answers GET /api/jobs with the queued answers of the test, then 200 with no jobs."""

    answers: list[tuple[int, dict[str, Any]]] = []
    seen: list[float] = []

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        self.seen.append(time.monotonic())
        status, body = self.answers.pop(0) if self.answers else (200, {"jobs": []})
        data = json.dumps(body).encode()
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0.2")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def service() -> Iterator[type[_Service]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    _Service.answers, _Service.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Service.url = f"http://127.0.0.1:{server.server_port}/"  # type: ignore[attr-defined]
    yield _Service
    server.shutdown()


def paced() -> tuple[int, dict[str, Any]]:
    return 429, {"status": 429, "field": "Authorization", "quota": "max_request_rate",
                 "message": "more than 20 requests a second"}  # fmt: skip


def test_a_paced_call_waits_its_retry_after_and_goes_through(service: type[_Service]) -> None:
    service.answers = [paced(), paced()]
    client = JobsClient(service.url, "token", "")  # type: ignore[attr-defined]
    assert client.list() == []
    assert len(service.seen) == 3
    assert service.seen[1] - service.seen[0] >= 0.19
    assert service.seen[2] - service.seen[1] >= 0.19


def test_another_429_is_the_answer_at_once(service: type[_Service]) -> None:
    queued = {"status": 429, "field": "workers", "quota": "max_queued_jobs", "message": "full"}
    service.answers = [(429, queued)]
    client = JobsClient(service.url, "token", "")  # type: ignore[attr-defined]
    with pytest.raises(JobsAPIError) as caught:
        client.list()
    assert caught.value.status == 429 and len(service.seen) == 1


def test_a_read_waits_for_a_restarting_service_and_a_write_does_not(
    service: type[_Service],
) -> None:
    url = service.url  # type: ignore[attr-defined]
    port = int(url.rsplit(":", 1)[1].strip("/"))
    with socket.socket() as probe:  # a port nothing listens on, for now
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    client = JobsClient(f"http://127.0.0.1:{closed}/", "token", "")
    with pytest.raises(requests.ConnectionError):
        client.cancel("0123456789ab")  # a POST: raised at once, never sent twice

    # the service comes back 1.5 s later, on that port
    relay = threading.Timer(1.5, _forward, (closed, port))
    relay.start()
    started = time.monotonic()
    try:
        assert client.list() == []
    finally:
        relay.join()
    assert 1.5 <= time.monotonic() - started < 10


def _forward(port: int, to: int) -> None:
    """Serve one connection on `port` by passing it to the test service on `to`."""
    with socket.create_server(("127.0.0.1", port)) as listener:
        conn, _ = listener.accept()
        with conn, socket.create_connection(("127.0.0.1", to)) as upstream:
            upstream.sendall(conn.recv(65536))
            upstream.shutdown(socket.SHUT_WR)
            while data := upstream.recv(65536):
                conn.sendall(data)
