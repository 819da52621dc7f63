"""Network plumbing of the test cluster: one Linux bridge per cluster, each pod (and each Kubeflow
controller) in its own network namespace joined to it by a veth pair, with an address from the
cluster's range. Needs root (CAP_NET_ADMIN); traffic stays on this host."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
from pathlib import Path

NETNS_ETC = Path("/etc/netns")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Network:
    """Cluster number `index`: bridge hfbr<index>, 10.<200+index>.0.0/17 for the bridge (host side
    10.<200+index>.0.1) and pods; 10.<200+index>.240.0/20 for Service ClusterIPs (never routed)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.bridge = f"hfbr{index}"
        self.prefix = f"hf{index}"
        net = ipaddress.ip_network(f"10.{200 + index}.0.0/17")
        self.pod_cidr = str(net)
        self.host_ip = str(net.network_address + 1)
        self.service_cidr = f"10.{200 + index}.240.0/20"
        # Pods from 10.<200+index>.1.0 on (the node agent); 10.<200+index>.0.10-.255 for the
        # Kubeflow controllers (infra_ip); the two never meet.
        self._hosts = (
            str(a)
            for a in net.hosts()
            if int(a) - int(net.network_address) > 256 and not str(a).endswith((".0", ".255"))
        )
        self._base = net.network_address

    def up(self) -> None:
        self.down()
        ip("link", "add", self.bridge, "type", "bridge")
        # A fixed address: a bridge otherwise takes its ports' lowest MAC, which changes as pods
        # come and go, and the namespaces' ARP entries for the host side go stale.
        ip("link", "set", self.bridge, "address", f"02:68:66:00:00:{self.index:02x}")
        ip("addr", "add", f"{self.host_ip}/17", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def down(self) -> None:
        """Remove the bridge, and every namespace and /etc/netns entry of this cluster number;
        a process still in one of the namespaces (a pod the node agent did not stop) is killed."""
        listed = ip("netns", "list", check=False).stdout.split("\n")
        for line in listed:
            name = line.split(" ")[0]
            if name.startswith(self.prefix + "-"):
                for pid in ip("netns", "pids", name, check=False).stdout.split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                ip("netns", "del", name, check=False)
                shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
        if NETNS_ETC.is_dir():
            for stale in NETNS_ETC.glob(self.prefix + "-*"):
                shutil.rmtree(stale, ignore_errors=True)
        ip("link", "del", self.bridge, check=False)

    def next_ip(self) -> str:
        """The next pod address."""
        return next(self._hosts)

    def infra_ip(self, number: int) -> str:
        """The address of the `number`th controller (0-based)."""
        return str(self._base + 10 + number)

    def add(self, name: str, address: str, hosts: str = "", resolv: str = "") -> str:
        """Namespace `<prefix>-<name>` with `address` on its eth0; its own /etc/hosts and resolv.conf
        (bind-mounted by `ip netns exec`). Returns the namespace name."""
        ns = f"{self.prefix}-{name}"
        ip("netns", "del", ns, check=False)
        ip("netns", "add", ns)
        host_if = f"{self.prefix}v{address.split('.', 2)[2].replace('.', 'x')}"[:15]
        ip("link", "del", host_if, check=False)
        ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", host_if, "master", self.bridge, "up")
        ip("-n", ns, "addr", "add", f"{address}/17", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "route", "add", "default", "via", self.host_ip)
        etc = NETNS_ETC / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(hosts or f"127.0.0.1 localhost\n{address} {name}\n")
        (etc / "resolv.conf").write_text(
            resolv or "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
        )
        return ns

    def remove(self, ns: str) -> None:
        ip("netns", "del", ns, check=False)  # its veth goes with it
        shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
