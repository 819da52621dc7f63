"""How a user's processes start in local mode: the one `preexec_fn` the spawner (servers, their
kernels and terminals) and the jobs service (jobs' supervisors and ranks, warm pools) give
`subprocess.Popen`, so that everything of a user's runs alike.

`process` describes it, as the spawner records it in the server's state:
`{"account": {"name", "uid", "gid", "groups"}, "cgroups": [cgroup.procs files], "network":
"isolated" | "shared"}`. Between fork and exec, still as root, the child joins the server's
cgroups, may enter a network namespace of its own (loopback only), enters a mount namespace of
its own whose /proc shows its account's processes only and where the hub's Python is reachable
even if its install sits in a directory accounts cannot pass through (that directory then holds
the install only), then becomes the account. An empty `process` (a hub that
is not root) changes nothing.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 1 << 18
_SIOCSIFFLAGS = 0x8914
_IFF_UP_LOOPBACK_RUNNING = 0x1 | 0x8 | 0x40
_libc = ctypes.CDLL(None, use_errno=True)
# Resolved now, in the parent: a child of a threaded parent must not look symbols up (dlsym
# takes a lock another thread may have held at fork).
_unshare, _mount = _libc.unshare, _libc.mount


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def own_network() -> None:
    """Enter a new network namespace whose only interface, loopback, is up (root only)."""
    _check(_unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", _IFF_UP_LOOPBACK_RUNNING))


def loopback_hosts() -> Path:
    """A hosts file for a job's network namespace: this machine's, plus names for loopback's
    IPv6 forms and this host's name, which would otherwise go to a DNS server the namespace
    cannot reach (torch's rendezvous looks its peers up and warns in every rank's log)."""
    global _hosts
    if _hosts is None:
        extra = f"\n::1 localhost\n::ffff:127.0.0.1 localhost\n127.0.0.1 {socket.gethostname()}\n"
        fd, name = tempfile.mkstemp(prefix="hubflow-hosts-")
        with os.fdopen(fd, "wb") as f:
            f.write(Path("/etc/hosts").read_bytes() + extra.encode())
        os.chmod(name, 0o644)
        _hosts = Path(name)
    return _hosts


_hosts: Path | None = None


def closed_parent(path: Path) -> Path | None:
    """The first directory above `path` that other accounts cannot pass through, or None."""
    for parent in reversed(path.resolve().parents):
        if not parent.stat().st_mode & 0o001:
            return parent
    return None


def python_install() -> Path:
    """Where this Python's interpreter and standard library live."""
    return Path(sys.base_prefix).resolve()


def private_view() -> None:
    """Enter a new mount namespace whose /proc shows only the processes of the account the child
    becomes (hidepid): nothing of the hub's or of other users'."""
    _check(_unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate")
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    _check(_mount(b"proc", b"/proc", b"proc", flags, b"hidepid=invisible"), "mount /proc")


def reveal(install: Path, closed: Path) -> None:
    """In the child's own mount namespace, make `closed` (a directory accounts cannot pass
    through, such as root's home holding pyenv) an empty, passable directory holding `install`
    only."""
    fd = os.open(install, os.O_PATH)
    try:
        _check(_mount(b"tmpfs", bytes(closed), b"tmpfs", 0, b"mode=0711"), f"mount {closed}")
        os.makedirs(install)
        os.chmod(install, 0o755)
        for parent in install.parents:
            if parent == closed:
                break
            os.chmod(parent, 0o711)
        source = f"/proc/self/fd/{fd}".encode()
        _check(_mount(source, bytes(install), None, _MS_BIND | _MS_REC, None), "bind")
    finally:
        os.close(fd)


def run_as(
    process: Mapping[str, Any], network: bool = True, cwd: str | None = None
) -> Callable[[], None]:
    """A `preexec_fn` that starts a child as `process` says (see the module's docstring); with
    `network` False it keeps this machine's network whatever the setting (a server does)."""
    account = process.get("account")
    isolate = network and process.get("network", "isolated") == "isolated"
    hosts = bytes(loopback_hosts()) if isolate and account else b""
    install = python_install()
    closed = closed_parent(install) if account else None

    def preexec() -> None:
        for procs in process.get("cgroups", []):
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        if account is not None and int(account["uid"]) != os.geteuid():
            if isolate:
                own_network()
            private_view()
            if hosts:
                _check(_mount(hosts, b"/etc/hosts", None, _MS_BIND, None), "mount /etc/hosts")
            if closed is not None:
                reveal(install, closed)
            os.setgroups([int(g) for g in account["groups"]])
            os.setgid(int(account["gid"]))
            os.setuid(int(account["uid"]))
        if cwd is not None:
            os.chdir(cwd)

    return preexec
