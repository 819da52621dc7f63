"""Drive a real hub over HTTP as a browser would: log in, open the spawn page, post it, wait."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def passable_parents(path: Path) -> None:
    """Let users' accounts pass through (not list) pytest's private temporary directories to a
    root hub's data dir, as its operator would (the hub refuses a data dir they cannot reach)."""
    if os.geteuid() != 0:
        return
    for parent in path.resolve().parents:
        if parent.stat().st_uid == 0 and not parent.stat().st_mode & 0o001:
            parent.chmod(parent.stat().st_mode | 0o001)


@dataclass
class HubProcess:
    """A real JupyterHub (with its real proxy) started from the project's jupyterhub_config.py
    (or `config_file`, a test's config that builds on it)."""

    data_dir: Path
    profiles: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)
    config_file: Path = ROOT / "jupyterhub_config.py"
    port: int = field(default_factory=free_port)
    hub_port: int = field(default_factory=free_port)
    proxy_api_port: int = field(default_factory=free_port)
    jobs_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: Run in the hub's process before it starts (e.g. to run it as another account).
    preexec_fn: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        """The public URL (the proxy)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def jobs_url(self) -> str:
        """The jobs service's own base URL."""
        return f"http://127.0.0.1:{self.jobs_port}/services/hubflow-jobs/"

    def env(self) -> dict[str, str]:
        """The environment the hub runs with."""
        env = dict(os.environ)
        env.update(
            HUBFLOW_DATA_DIR=str(self.data_dir),
            HUBFLOW_PROFILES=os.pathsep.join(self.profiles),
            HUBFLOW_PORT=str(self.port),
            HUBFLOW_HUB_PORT=str(self.hub_port),
            HUBFLOW_PROXY_API_PORT=str(self.proxy_api_port),
            HUBFLOW_JOBS_PORT=str(self.jobs_port),
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        )
        env.update(self.extra_env)
        return env

    def start(self, wait: bool = True) -> HubProcess:
        """Start the hub; with `wait`, return once its API answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        passable_parents(self.data_dir)
        self.log_path = self.data_dir / "hub.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the process's life)
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(self.config_file)],
            cwd=self.data_dir,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=self.preexec_fn,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the hub answers through the proxy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"hub did not answer in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """What the hub printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        """Stop the hub (its proxy and managed services with it); users' servers keep running."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill_everything(self) -> None:
        """Stop the hub and every process it left (servers, jobs): those whose working directory,
        command line or environment names the data dir in use."""
        self.stop()
        for pid in self.leftover_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def leftover_processes(self) -> list[int]:
        """The live processes (not zombies) whose working directory, command line or
        environment names the data dir in use: the hub's, its proxy's, services', servers'."""
        marker = str(self.data_dir).encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
                seen = [
                    str(Path(proc / "cwd").resolve()).encode(),
                    (proc / "cmdline").read_bytes(),
                    (proc / "environ").read_bytes(),
                ]
            except OSError:
                continue
            if any(marker in part for part in seen):
                found.append(int(proc.name))
        return found


class HubClient(requests.Session):
    """A browser-like session with one user logged in to a hub."""

    def __init__(self, hub: HubProcess, username: str, password: str = "hubflow") -> None:
        super().__init__()
        self.hub = hub
        self.username = username
        self.password = password

    def xsrf(self) -> str:
        """The hub's _xsrf cookie, sent back in forms and the X-XSRFToken header."""
        token = self.cookies.get("_xsrf", path="/hub/") or self.cookies.get("_xsrf")
        if not token:
            self.get(f"{self.hub.url}/hub/login")
            token = self.cookies.get("_xsrf", path="/hub/") or self.cookies.get("_xsrf")
        assert token, "the hub set no _xsrf cookie"
        return token

    def login(self) -> HubClient:
        """Log in through the login form."""
        self.get(f"{self.hub.url}/hub/login")
        r = self.post(
            f"{self.hub.url}/hub/login?next=",
            data={"username": self.username, "password": self.password, "_xsrf": self.xsrf()},
            allow_redirects=False,
        )
        if r.status_code != 302:
            raise AssertionError(
                f"login as {self.username} failed: {r.status_code}\n{r.text[:500]}"
            )
        return self

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the hub REST API with the session cookie (and the xsrf header it needs)."""
        headers = kwargs.pop("headers", {})
        headers["X-XSRFToken"] = self.xsrf()
        return self.request(method, f"{self.hub.url}/hub/api/{path}", headers=headers, **kwargs)

    def spawn_page(self, server_name: str = "") -> str:
        """The spawn page's HTML."""
        suffix = f"/{self.username}/{server_name}" if server_name else ""
        r = self.get(f"{self.hub.url}/hub/spawn{suffix}")
        r.raise_for_status()
        r.encoding = "utf-8"  # the hub's pages say so in <meta charset>, not in their header
        return r.text

    def post_spawn(self, form: dict[str, str], server_name: str = "") -> requests.Response:
        """Post the spawn form as a browser would (not following the redirect)."""
        suffix = f"/{self.username}/{server_name}" if server_name else ""
        self.spawn_page(server_name)
        data = dict(form, _xsrf=self.xsrf())
        r = self.post(f"{self.hub.url}/hub/spawn{suffix}", data=data, allow_redirects=False)
        r.encoding = "utf-8"
        return r

    def server(self, server_name: str = "") -> dict[str, Any] | None:
        """The hub's model of one of this user's servers, or None if it is not running."""
        r = self.api("GET", f"users/{self.username}")
        r.raise_for_status()
        servers: dict[str, Any] = r.json().get("servers", {})
        return servers.get(server_name)

    def wait_ready(self, server_name: str = "", timeout: float = 120) -> dict[str, Any]:
        """Wait until the server is ready; raise with the spawn's failure message if it failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.server(server_name)
            if model and model.get("ready"):
                return model
            if model is None:
                progress = self.spawn_progress(server_name)
                if progress.get("failed"):
                    raise RuntimeError(f"spawn failed: {progress.get('message')}")
            time.sleep(0.5)
        raise TimeoutError(
            f"server {server_name!r} not ready in {timeout}s:\n{self.hub.log()[-3000:]}"
        )

    def spawn_progress(self, server_name: str = "") -> dict[str, Any]:
        """The spawn's progress stream until it ends: the last event, plus every message seen."""
        r = self.api("GET", f"users/{self.username}/servers/{server_name}/progress", stream=True)
        last: dict[str, Any] = {}
        messages = []
        for raw in r.iter_lines():
            line = raw.decode()
            if line.startswith("data:"):
                last = json.loads(line[5:])
                messages.append(last.get("message", ""))
        return dict(last, messages=messages)

    def spawn(self, form: dict[str, str], server_name: str = "") -> dict[str, Any]:
        """Post the spawn form and wait for the server to be ready."""
        r = self.post_spawn(form, server_name)
        if r.status_code != 302:
            raise AssertionError(f"spawn refused: {r.status_code} {page_error(r.text)}")
        return self.wait_ready(server_name)

    def stop_server(self, server_name: str = "") -> None:
        """Stop a server and wait until it is gone."""
        r = self.api("DELETE", f"users/{self.username}/servers/{server_name}")
        assert r.status_code in (202, 204), r.text
        deadline = time.monotonic() + 60
        while self.server(server_name) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError("server did not stop")
            time.sleep(0.3)

    def new_token(self, note: str = "test") -> str:
        """An API token of this user's own."""
        r = self.api("POST", f"users/{self.username}/tokens", json={"note": note})
        r.raise_for_status()
        return str(r.json()["token"])

    def server_url(self, server_name: str = "") -> str:
        """The server's base URL through the proxy."""
        suffix = f"{server_name}/" if server_name else ""
        return f"{self.hub.url}/user/{self.username}/{suffix}"


def page_error(page: str) -> str:
    """The error message JupyterHub shows on a re-rendered spawn page ('' when none)."""
    m = re.search(r'class="spawn-error-msg[^"]*"[^>]*>(.*?)</p>', page, re.S)
    return (
        html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", m.group(1))).strip()) if m else ""
    )
