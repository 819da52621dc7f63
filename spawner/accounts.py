"""System accounts for local mode: each hub user's servers and jobs run as an account of their own.

When the hub runs as root, hub user `alice` runs as `jupyter-alice` (the prefix is a setting), a
system account without a login shell created on first start; an operator may map a hub user to
an existing account instead. A hub that is not root cannot switch accounts: it runs everything as
itself and serves only one person (hub/auth.py).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escapism import escape

#: The longest account name useradd and `ps` handle well.
MAX_ACCOUNT_CHARS = 32
_SAFE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789")


class AccountError(RuntimeError):
    """An account cannot be used or created; the message says why in plain words."""


def escaped_name(name: str) -> str:
    """A file-system-safe, collision-free form of a user name (escapism, '-' as escape)."""
    return escape(name, safe=_SAFE_NAME_CHARS, escape_char="-")


def account_name(user: str, prefix: str) -> str:
    """`<prefix><escaped user>`, at most 32 characters: a longer one is cut and ends in `_` and a
    hash of the whole name (escaped names hold no `_`, so a cut name never equals another).
    Safe characters are lowercase, so lowering the escapes' hex digits keeps names distinct."""
    name = prefix + escaped_name(user).lower()
    if len(name) <= MAX_ACCOUNT_CHARS:
        return name
    digest = hashlib.sha256(user.encode()).hexdigest()[:6]
    return f"{name[: MAX_ACCOUNT_CHARS - len(digest) - 1]}_{digest}"


@dataclass(frozen=True)
class Account:
    """A system account processes run as: its ids and supplementary groups."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def lookup(cls, name: str) -> Account:
        """The existing account `name` (AccountError if there is none)."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise AccountError(f"there is no system account {name!r}") from None
        groups = tuple(g for g in os.getgrouplist(name, entry.pw_gid) if g != entry.pw_gid)
        return cls(name, entry.pw_uid, entry.pw_gid, groups)

    @classmethod
    def current(cls) -> Account:
        """The account this process runs as."""
        name = pwd.getpwuid(os.geteuid()).pw_name
        return cls(name, os.geteuid(), os.getegid(), tuple(os.getgroups()))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uid": self.uid, "gid": self.gid, "groups": list(self.groups)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Account:
        return cls(str(data["name"]), int(data["uid"]), int(data["gid"]), tuple(data["groups"]))


def create_account(name: str, home: Path, attempts: int = 20) -> Account:
    """The system account `name`, created if absent (no login shell, HOME `home`). Concurrent
    creations by other processes (useradd's lock on /etc/passwd) are waited out."""
    for _ in range(attempts):
        try:
            return Account.lookup(name)
        except AccountError:
            pass
        done = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(home)]
            + ["--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return Account.lookup(name)
        time.sleep(0.2)  # the lock is busy, or another process created it: look again
    raise AccountError(f"could not create the system account {name!r}: {done.stderr.strip()}")


@dataclass(frozen=True)
class AccountPolicy:
    """Which account a hub user runs as: their own (root hub), a mapped one, or the hub's."""

    prefix: str = "jupyter-"
    mapping: Mapping[str, str] | None = None

    @property
    def isolating(self) -> bool:
        """Whether users run as accounts of their own: only a root hub can switch accounts."""
        return os.geteuid() == 0

    def account_for(self, user: str, home: Path) -> Account:
        """The account `user`'s processes run as, created if it is theirs and absent."""
        if not self.isolating:
            return Account.current()
        mapped = (self.mapping or {}).get(user)
        account = (
            Account.lookup(mapped)
            if mapped
            else create_account(account_name(user, self.prefix), home)
        )
        if account.uid == 0 or account.gid == 0:
            raise AccountError(f"{user} may not run as {account.name!r}: it is a root account")
        return account


def private_dir(path: Path, account: Account) -> Path:
    """`path` as a directory of `account`'s own (mode 0700), created if absent; what it held
    when another account owned it (a workspace from before accounts) becomes the account's too."""
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_uid != account.uid:
        for folder, _, files in os.walk(path):
            for name in files:
                os.chown(Path(folder) / name, account.uid, account.gid, follow_symlinks=False)
            os.chown(folder, account.uid, account.gid, follow_symlinks=False)
    path.chmod(0o700)
    return path


def secure_data_dir(data_dir: Path, databases: list[Path]) -> None:
    """Make a root hub's data dir its own: accounts may only pass through it (and through
    `users/`, `jobs/` and `pools/`) to what is theirs; its files and SQLite `databases` are private."""
    data_dir.chmod(0o711)
    for name in ("users", "jobs", "pools"):
        (data_dir / name).mkdir(exist_ok=True)
        (data_dir / name).chmod(0o711)
    for database in databases:
        database.touch(mode=0o600)  # before SQLite creates it with the default mode
    for entry in [*data_dir.iterdir(), *databases]:
        if entry.is_file() and not entry.is_symlink():
            entry.chmod(entry.stat().st_mode & 0o700)
