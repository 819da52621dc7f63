"""A small client of a Jupyter server's kernels through the hub's proxy: REST to start,
interrupt and stop a kernel, the websocket channels to execute code and collect its output."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests
import websocket


@dataclass
class Execution:
    """What one execute_request produced, as the notebook would show it."""

    stdout: str = ""
    stderr: str = ""
    displays: dict[str, str] = field(default_factory=dict)  # display_id -> latest text/plain
    display_history: list[str] = field(default_factory=list)  # every text/plain shown or updated
    result: str | None = None
    error: dict[str, Any] | None = None
    status: str = ""

    @property
    def traceback(self) -> str:
        return "\n".join(self.error["traceback"]) if self.error else ""


class KernelClient:
    """One kernel of a user's server, driven with the user's API token."""

    def __init__(self, server_url: str, token: str) -> None:
        self.server_url = server_url if server_url.endswith("/") else server_url + "/"
        self.headers = {"Authorization": f"token {token}"}
        self.token = token
        r = requests.post(
            f"{self.server_url}api/kernels",
            json={"name": "python3"},
            headers=self.headers,
            timeout=60,
        )
        r.raise_for_status()
        self.kernel_id = r.json()["id"]
        ws_url = (
            self.server_url.replace("http://", "ws://") + f"api/kernels/{self.kernel_id}/channels"
        )
        self.ws = websocket.create_connection(
            ws_url, header=[f"Authorization: token {token}"], timeout=120
        )
        self.session = uuid.uuid4().hex
        self._lock = threading.Lock()

    def _send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        msg = {
            "header": {
                "msg_id": msg_id,
                "username": "test",
                "session": self.session,
                "msg_type": msg_type,
                "version": "5.3",
                "date": "",
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": channel,
            "buffers": [],
        }
        with self._lock:
            self.ws.send(json.dumps(msg))
        return msg_id

    def execute(self, code: str, timeout: float = 180, on_output: Any = None) -> Execution:
        """Run `code`; return its output once the kernel is idle again. `on_output(execution)`
        is called after each output message (e.g. to interrupt once something was printed)."""
        msg_id = self._send(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )
        out = Execution()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    out.stdout += content["text"]
                else:
                    out.stderr += content["text"]
            elif kind in ("display_data", "update_display_data"):
                text = content["data"].get("text/plain", "")
                display_id = content.get("transient", {}).get("display_id", "")
                out.displays[display_id] = text
                out.display_history.append(text)
            elif kind == "execute_result":
                out.result = content["data"].get("text/plain")
            elif kind == "error":
                out.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                out.status = "error" if out.error else "ok"
                return out
            if on_output is not None:
                on_output(out)
        raise TimeoutError(f"no answer to {code[:60]!r} in {timeout}s; so far: {out}")

    def interrupt(self) -> None:
        r = requests.post(
            f"{self.server_url}api/kernels/{self.kernel_id}/interrupt",
            headers=self.headers,
            timeout=30,
        )
        r.raise_for_status()

    def close(self) -> None:
        self.ws.close()
        requests.delete(
            f"{self.server_url}api/kernels/{self.kernel_id}", headers=self.headers, timeout=30
        )
