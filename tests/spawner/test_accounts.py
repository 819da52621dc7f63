"""Users' system accounts: names (escaped, at most 32 characters, collision-free), creation on
first use, mapped accounts, and the preexec that runs a child as an account (tests run as root)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from hubflow.launcher.runas import run_as
from hubflow.spawner.accounts import (
    MAX_ACCOUNT_CHARS,
    Account,
    AccountError,
    AccountPolicy,
    account_name,
    private_dir,
    secure_data_dir,
)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="creates system accounts: needs root")


def test_account_names_are_escaped_short_and_distinct() -> None:
    users = ["alice", "Alice", "a.lice", "a-lice", "al_ice", "x" * 40, "x" * 41, "y" * 26]
    names = [account_name(u, "jupyter-") for u in users]
    assert names[0] == "jupyter-alice"
    assert len(set(names)) == len(users)
    assert all(len(n) <= MAX_ACCOUNT_CHARS for n in names)
    assert all(n == n.lower() and n.isascii() and "." not in n for n in names)
    assert names[5].startswith("jupyter-xxx") and "_" in names[5]  # cut, with a hash


def test_a_cut_name_never_equals_an_uncut_one() -> None:
    # an uncut name holds no '_' (escaped), a cut one ends in '_' and a hash
    long_user = "a" * 30
    assert "_" in account_name(long_user, "jupyter-")
    assert "_" not in account_name("a" * 24, "jupyter-")


def test_a_hub_that_is_not_root_runs_everyone_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    policy = AccountPolicy("jupyter-")
    assert not policy.isolating
    assert policy.account_for("bob", Path("/nowhere")) == Account.current()


@root_only
def test_an_account_is_created_on_first_use_and_reused(tmp_path: Path) -> None:
    policy = AccountPolicy("hftest-")
    account = policy.account_for("carol", tmp_path / "home")
    entry = pwd.getpwnam("hftest-carol")
    assert (account.uid, account.gid) == (entry.pw_uid, entry.pw_gid)
    assert entry.pw_shell == "/usr/sbin/nologin"
    assert policy.account_for("carol", tmp_path / "home") == account


@root_only
def test_a_mapped_account_is_used_and_root_is_refused(tmp_path: Path) -> None:
    assert AccountPolicy("x-", {"dave": "nobody"}).account_for("dave", tmp_path).name == "nobody"
    with pytest.raises(AccountError, match="it is a root account"):
        AccountPolicy("x-", {"dave": "root"}).account_for("dave", tmp_path)
    with pytest.raises(AccountError, match="no system account 'no-such-acct'"):
        AccountPolicy("x-", {"dave": "no-such-acct"}).account_for("dave", tmp_path)


@root_only
def test_a_child_runs_as_the_account_with_the_hubs_python_and_sees_nothing_of_roots(
    tmp_path: Path,
) -> None:
    account = AccountPolicy("hftest-").account_for("carol", tmp_path)
    process = {"account": account.to_dict(), "network": "isolated"}
    code = (
        "import json, os, socket\n"
        "print(json.dumps({'uid': os.getuid(), 'groups': os.getgroups(), 'cwd': os.getcwd(),"
        " 'interfaces': [n for _, n in socket.if_nameindex()],"
        " 'root_home': os.path.exists(os.path.expanduser('~root/.bashrc')),"
        " 'pid 1': os.path.exists('/proc/1')}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=run_as(process, cwd="/"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    seen = json.loads(out)
    assert seen["uid"] == account.uid and seen["groups"] == []
    assert seen["interfaces"] == ["lo"]  # a network namespace of its own
    assert seen["root_home"] is False
    assert seen["pid 1"] is False  # /proc shows the account's own processes only


@root_only
def test_the_data_dir_lets_accounts_pass_but_read_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hub.log").write_text("secret")
    database = data / "jupyterhub.sqlite"
    secure_data_dir(data, [database])
    assert data.stat().st_mode & 0o777 == 0o711
    assert (data / "users").stat().st_mode & 0o777 == 0o711
    assert (data / "jobs").stat().st_mode & 0o777 == 0o711
    assert database.stat().st_mode & 0o077 == 0
    assert (data / "hub.log").stat().st_mode & 0o077 == 0


@root_only
def test_a_workspace_from_before_accounts_becomes_the_accounts(tmp_path: Path) -> None:
    account = AccountPolicy("hftest-").account_for("carol", tmp_path)
    workspace = tmp_path / "workspace"
    (workspace / "notebooks").mkdir(parents=True)
    (workspace / "notebooks" / "a.ipynb").write_text("{}")
    private_dir(workspace, account)
    for path in (workspace, workspace / "notebooks", workspace / "notebooks" / "a.ipynb"):
        assert path.stat().st_uid == account.uid
    assert workspace.stat().st_mode & 0o777 == 0o700
