"""Loaded by every Python a simulated pod runs: binds to all interfaces mean the pod's own IP.

The kubelet stand-in puts this folder first on PYTHONPATH and the pod IP in SIM_POD_IP, so a server
listening on 0.0.0.0 (or "") answers on 127.0.0.N only and pods can share port numbers.
"""

import os
import socket
from typing import Any

_POD_IP = os.environ.get("SIM_POD_IP")
_bind = socket.socket.bind


def _pod_bind(self: socket.socket, address: Any) -> None:
    if (
        _POD_IP
        and self.family == socket.AF_INET
        and isinstance(address, tuple)
        and address[0] in ("", "0.0.0.0")
    ):
        address = (_POD_IP, *address[1:])
    _bind(self, address)


socket.socket.bind = _pod_bind  # type: ignore[method-assign,assignment]
