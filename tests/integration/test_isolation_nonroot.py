"""A hub that is not root cannot keep users apart: run as a plain account, it says at start and
on the spawn page that it serves one person, and it refuses to listen beyond loopback with a
real login."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hubflow.launcher.runas import run_as
from hubflow.spawner.accounts import AccountPolicy
from tests.helpers.hubclient import HubClient, HubProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="makes a non-root hub: needs root")


def plain_account_hub(
    hub_factory: Callable[..., HubProcess], tmp_path: Path, **env: str
) -> HubProcess:
    """A hub (not started) that runs as the plain account `hftest-hub`, in a data dir of its."""
    account = AccountPolicy("hftest-").account_for("hub", tmp_path)
    data_dir = tmp_path / "plain"
    data_dir.mkdir()
    os.chown(data_dir, account.uid, account.gid)
    hub = hub_factory(data_dir=data_dir, extra_env={"HOME": str(data_dir), **env}, start=False)
    hub.preexec_fn = run_as({"account": account.to_dict()}, network=False)
    return hub


def test_a_plain_account_hub_is_a_single_person_demo(hub_factory, tmp_path: Path) -> None:
    hub = plain_account_hub(hub_factory, tmp_path).start()
    assert "Single-person demo: the hub runs as 'hftest-hub'" in hub.log()
    page = HubClient(hub, "alice").login().spawn_page()
    assert "Single-person hub" in page
    assert "CPU and memory limits are not enforced here" in page


def test_a_plain_account_hub_refuses_a_real_login_beyond_loopback(
    hub_factory, tmp_path: Path
) -> None:
    hub = plain_account_hub(
        hub_factory, tmp_path, HUBFLOW_AUTHENTICATOR="github", HUBFLOW_IP="0.0.0.0"
    )
    hub.start(wait=False)
    assert hub.proc is not None
    assert hub.proc.wait(60) != 0
    assert "HUBFLOW_IP=0.0.0.0 is beyond loopback, but the hub is not root" in hub.log()
