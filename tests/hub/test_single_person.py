"""A local hub that is not root cannot keep users apart: it serves one person, says so, and keeps
its ports on loopback; the demo login stays on loopback whatever the hub's user."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tornado import web
from traitlets import Unicode
from traitlets.config import Config, Configurable

from hubflow.hub.auth import DemoAuthenticator, hub_account, single_person_hook
from hubflow.hub.config import configure
from hubflow.hub.settings import HubflowSettings


def settings(tmp_path: Path, **env: str) -> HubflowSettings:
    return HubflowSettings.from_env({"HUBFLOW_DATA_DIR": str(tmp_path), **env})


@pytest.fixture
def not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


@pytest.mark.parametrize("variable", ["HUBFLOW_IP", "HUBFLOW_HUB_IP", "HUBFLOW_JOBS_IP"])
def test_a_hub_that_is_not_root_refuses_any_port_beyond_loopback(
    tmp_path: Path, not_root: None, variable: str
) -> None:
    with pytest.raises(SystemExit, match=f"{variable}=0.0.0.0 is beyond loopback.*not root"):
        configure(
            Config(), settings(tmp_path, HUBFLOW_AUTHENTICATOR="github", **{variable: "0.0.0.0"})
        )


def test_a_root_hub_may_serve_others_with_a_real_login(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = Config()
    configure(c, settings(tmp_path, HUBFLOW_AUTHENTICATOR="github", HUBFLOW_IP="0.0.0.0"))
    assert c.JupyterHub.bind_url == "http://0.0.0.0:8000"
    assert "post_auth_hook" not in c.Authenticator


@pytest.mark.parametrize("variable", ["HUBFLOW_HUB_IP", "HUBFLOW_JOBS_IP"])
def test_the_demo_login_refuses_every_port_beyond_loopback(tmp_path: Path, variable: str) -> None:
    with pytest.raises(
        SystemExit, match=f"demo login only listens on 127.0.0.1, but {variable}=0.0.0.0"
    ):
        configure(Config(), settings(tmp_path, **{variable: "0.0.0.0"}))


def test_the_demo_login_checks_the_hub_api_address_itself() -> None:
    class Hub(Configurable):
        bind_url = Unicode("http://127.0.0.1:8000")
        hub_ip = Unicode("0.0.0.0")

    with pytest.raises(ValueError, match="hub API is set to bind '0.0.0.0'"):
        DemoAuthenticator(parent=Hub())


def test_a_real_login_lets_only_the_hubs_own_account_in(tmp_path: Path, not_root: None) -> None:
    c = Config()
    configure(c, settings(tmp_path, HUBFLOW_AUTHENTICATOR="github"))
    hook = c.Authenticator.post_auth_hook
    me = {"name": hub_account()}
    assert hook(None, None, me) is me
    with pytest.raises(web.HTTPError) as refused:
        hook(None, None, {"name": "someone-else"})
    assert refused.value.status_code == 403
    assert "someone-else" in str(refused.value.log_message)


def test_the_demo_says_it_is_for_one_person(
    tmp_path: Path, not_root: None, capsys: pytest.CaptureFixture[str]
) -> None:
    c = Config()
    configure(c, settings(tmp_path))
    assert c.DemoAuthenticator.single_person is True
    assert "Single-person demo" in capsys.readouterr().err


def test_the_hook_names_the_person() -> None:
    with pytest.raises(web.HTTPError, match="serves 'ann' only; 'bo' may not log in"):
        single_person_hook("ann")(None, None, {"name": "bo"})
