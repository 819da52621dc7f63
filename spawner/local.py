"""Local mode: each user's server is a process on this machine, started from a resolved profile.

- the workspace is a directory under the data dir that survives stop and start; it is HOME and
  the server's root directory;
- GPUs are handed out by CUDA_VISIBLE_DEVICES so two running servers never share one, unless
  both profiles allow sharing;
- the launcher is injected: kernels load `hubflow.launcher`, and the jobs API address is in the
  environment.

Local mode runs every user's server as the hub's own system user: it isolates nothing and does
not enforce CPU or memory limits (they are passed on as CPU_LIMIT/MEM_LIMIT for tools to show).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from escapism import escape
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode, default

from hubflow.launcher.serverext_paths import extension_paths
from hubflow.profiles import ResolvedProfile
from hubflow.spawner.gpus import GpuAllocator, detect_gpus, parse_gpu_list
from hubflow.spawner.ides import IDES
from hubflow.spawner.profile_mixin import ProfileSpawnerMixin

_SAFE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789")


def escaped_name(name: str) -> str:
    """A file-system-safe, collision-free form of a user name (escapism, '-' as escape)."""
    return escape(name, safe=_SAFE_NAME_CHARS, escape_char="-")


class HubflowLocalSpawner(ProfileSpawnerMixin, LocalProcessSpawner):
    """Runs each user's JupyterLab, VS Code or RStudio server as a local process."""

    data_dir = Unicode(
        help="Where users' workspaces live: {data_dir}/users/{escaped user name}/workspace.",
    ).tag(config=True)

    gpus = Unicode(
        "",
        help="""This machine's GPUs as `id:product,...` (e.g. `0:NVIDIA-A100,1:NVIDIA-A100`), or `none`.

        Empty: ask nvidia-smi.
        """,
    ).tag(config=True)

    _allocators: dict[str, GpuAllocator] = {}

    @default("data_dir")
    def _data_dir_default(self) -> str:
        return str(Path.cwd() / "data")

    @property
    def allocator(self) -> GpuAllocator:
        """The machine-wide GPU allocator, one per inventory setting."""
        if self.gpus not in self._allocators:
            inventory = parse_gpu_list(self.gpus) if self.gpus else detect_gpus()
            self._allocators[self.gpus] = GpuAllocator(inventory)
        return self._allocators[self.gpus]

    @property
    def owner_key(self) -> str:
        """Who holds GPUs: this user's server, by name."""
        return f"{self.user.name}/{self.name}"

    @property
    def workspace(self) -> Path:
        """The user's persistent workspace (shared by the user's named servers)."""
        return Path(self.data_dir) / "users" / escaped_name(self.user.name) / "workspace"

    held_gpus: list[str] = []

    def gpu_availability(self) -> dict[str, tuple[int, int]]:
        return self.allocator.availability()

    def check_capacity(self, resolved: ResolvedProfile) -> None:
        self.allocator.check_available(resolved.gpu_count, resolved.gpu_type, resolved.gpu_shared)

    def ide_unavailable_reasons(self) -> dict[str, str]:
        reasons = {name: ide.unavailable_reason() for name, ide in IDES.items()}
        return {name: reason for name, reason in reasons.items() if reason}

    # -- progress -------------------------------------------------------------------------------
    def _progress(self, percent: int, message: str) -> None:
        self._events.append({"progress": percent, "message": message})
        self.log.info("%s: %s", self.owner_key, message)

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Spawn progress as the start goes on, for the progress page."""
        sent = 0
        while True:
            events = getattr(self, "_events", [])
            while sent < len(events):
                yield events[sent]
                sent += 1
            if self._spawn_future and self._spawn_future.done():
                return
            await asyncio.sleep(0.2)

    # -- start and stop -------------------------------------------------------------------------
    def _kernel_share_dir(self) -> Path:
        """A Jupyter data dir whose python3 kernel loads the launcher (first on JUPYTER_PATH)."""
        share = Path(self.data_dir) / "share" / "jupyter"
        spec_dir = share / "kernels" / "python3"
        spec_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "argv": [
                sys.executable,
                "-m",
                "ipykernel_launcher",
                "-f",
                "{connection_file}",
                "--ext=hubflow.launcher",
            ],
            "display_name": "Python 3 (hubflow)",
            "language": "python",
            "metadata": {"debugger": True},
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
        return share

    async def start(self) -> Any:
        """Resolve the profile again (never trust the form), check quotas, then start the server."""
        self._events: list[dict[str, Any]] = []
        resolved = self.admit(self.user_options)
        self._progress(
            10, f"Profile {resolved.display_name!r} with {IDES[resolved.ide].display_name}"
        )
        self.held_gpus = self.allocator.allocate(
            self.owner_key, resolved.gpu_count, resolved.gpu_type, resolved.gpu_shared
        )
        self.resolved = resolved
        if self.held_gpus:
            self._progress(30, f"GPUs {', '.join(self.held_gpus)} reserved for this server")
        try:
            self.workspace.mkdir(parents=True, exist_ok=True)
            self._progress(50, f"Workspace ready at {self.workspace}")
            self.notebook_dir = str(self.workspace)
            self.default_url = IDES[resolved.ide].default_url
            self.cpu_limit = resolved.cpu_limit
            self.cpu_guarantee = resolved.cpu_guarantee
            self.mem_limit = resolved.mem_limit
            self.mem_guarantee = resolved.mem_guarantee
            self._progress(70, f"Starting {IDES[resolved.ide].display_name}")
            result = await super().start()
            self._progress(90, "Server process started, waiting for it to answer")
            return result
        except BaseException:
            self.allocator.release(self.owner_key)
            self.held_gpus = []
            self.resolved = None
            raise

    async def stop(self, now: bool = False) -> None:
        """Stop the process and give its GPUs back; the workspace stays."""
        await super().stop(now=now)
        self.allocator.release(self.owner_key)
        self.held_gpus = []

    # -- process details ------------------------------------------------------------------------
    def make_preexec_fn(self, name: str) -> Any:
        """Start in the workspace, as the hub's own system user (local mode has no system users)."""
        workspace = str(self.workspace)

        def preexec() -> None:
            os.chdir(workspace)

        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        """HOME is the workspace, so user settings and `pip install --user` persist too."""
        env["USER"] = self.user.name
        env["HOME"] = str(self.workspace)
        env["SHELL"] = "/bin/bash"
        return env

    def get_env(self) -> dict[str, str]:
        """The profile's environment, the launcher's settings and the GPUs this server holds."""
        env = super().get_env()
        if self.resolved is not None:
            env.update(self.resolved.environment)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(self.held_gpus)
        env["HUBFLOW_WORKSPACE"] = str(self.workspace)
        env["HUBFLOW_PROFILE"] = self.resolved.slug if self.resolved else ""
        if self.jobs_url:
            env["HUBFLOW_JOBS_URL"] = self.jobs_url
        share = str(self._kernel_share_dir())
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [share, env.get("JUPYTER_PATH")]))
        env.update(extension_paths(env))  # the Jobs panel and its server extension
        # The process runs the hub's own Python environment: its bin dir first on PATH.
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        return env

    def get_args(self) -> list[str]:
        """Root may only run a server with --allow-root, added here and only when running as root."""
        args = list(super().get_args())
        if os.geteuid() == 0:
            args.append("--allow-root")
        return args

    # -- state ----------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        hubflow = self.hubflow_state()
        if hubflow:
            hubflow.update(
                gpus=self.held_gpus,
                workspace=str(self.workspace),
                environment=dict(self.resolved.environment) if self.resolved else {},
            )
            state["hubflow"] = hubflow
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        hubflow = state.get("hubflow") or {}
        self.load_hubflow_state(hubflow)
        self.held_gpus = list(hubflow.get("gpus", []))
        if self.resolved is not None and self.held_gpus:
            self.allocator.claim(self.owner_key, self.held_gpus, self.resolved.gpu_shared)

    def clear_state(self) -> None:
        super().clear_state()
        self.resolved = None
        self.held_gpus = []
