"""The per-policy view idle-culler talks to: its own token, one policy's servers, and a stop
that is checked again for jobs before the hub is asked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from tornado import netutil
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer

from hubflow.culling.view import PolicyView

BUSY = ("alice", "train")


class Hub:
    """Stands in for the hub's DELETE: records what was stopped."""

    def __init__(self) -> None:
        self.stopped: list[tuple[str, str]] = []

    async def stop(self, user: str, server: str) -> int:
        self.stopped.append((user, server))
        return 204


@pytest.fixture
async def served() -> AsyncIterator[tuple[PolicyView, Hub, str]]:
    hub = Hub()

    async def objection(user: str, server: str) -> str | None:
        return "job 1 is Running" if (user, server) == BUSY else None

    view = PolicyView("5.3.0", objection, hub.stop)
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = HTTPServer(view.app())
    server.add_sockets(sockets)
    yield view, hub, f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()


async def call(url: str, token: str, method: str = "GET") -> HTTPResponse:
    return await AsyncHTTPClient().fetch(
        url, method=method, headers={"Authorization": f"token {token}"}, raise_error=False
    )


async def test_each_policy_sees_its_own_servers(served: tuple[PolicyView, Hub, str]) -> None:
    view, _, url = served
    view.show({"idle-60-age-0": [{"name": "bob", "servers": {"": {}}}]})
    assert json.loads((await call(f"{url}/idle-60-age-0/", view.token)).body) == {
        "version": "5.3.0"
    }
    users = json.loads((await call(f"{url}/idle-60-age-0/users?state=ready", view.token)).body)
    assert [u["name"] for u in users] == ["bob"]
    assert json.loads((await call(f"{url}/idle-600-age-0/users", view.token)).body) == []
    assert (await call(f"{url}/idle-60-age-0/users", "wrong")).code == 403


async def test_a_stop_is_checked_for_jobs_again(served: tuple[PolicyView, Hub, str]) -> None:
    view, hub, url = served
    refused = await call(f"{url}/p/users/alice/servers/train", view.token, "DELETE")
    assert refused.code == 409
    assert (await call(f"{url}/p/users/alice/servers/notebook", view.token, "DELETE")).code == 204
    assert (await call(f"{url}/p/users/bob/server", view.token, "DELETE")).code == 204
    assert (await call(f"{url}/p/users/bob/server", "wrong", "DELETE")).code == 403
    assert hub.stopped == [("alice", "notebook"), ("bob", "")]
