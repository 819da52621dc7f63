"""Local mode: each user's server is a process on this machine, started from a resolved profile.

- the workspace is a directory under the data dir that survives stop and start; it is HOME and
  the server's root directory;
- GPUs are handed out by CUDA_VISIBLE_DEVICES so two running servers never share one, unless
  both profiles allow sharing;
- the launcher is injected: kernels load `hubflow.launcher`, and the jobs API address is in the
  environment.

When the hub runs as root, each user's server (its kernels and terminals with it) runs as the
user's own system account (spawner/accounts.py) with the workspace as its private HOME, inside
cgroups that enforce the profile's CPU and memory limits (spawner/limits.py). A hub that is not
root runs servers as itself and serves one person only (hub/auth.py).

Stopping a server cancels its running jobs or keeps them (a setting); GPUs a kept job still uses
stay held until it ends, so the next server is not handed them.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Dict, Enum, Unicode, default

from hubflow.launcher.contract import JOB_DIR_ENV, JOB_GPUS_ENV, JobState
from hubflow.launcher.runas import run_as
from hubflow.launcher.serverext_paths import extension_paths
from hubflow.profiles import ResolvedProfile
from hubflow.profiles.server_record import STATE_KEY
from hubflow.spawner.accounts import Account, AccountError, AccountPolicy, escaped_name, private_dir
from hubflow.spawner.gpus import GpuAllocator, detect_gpus, parse_gpu_list
from hubflow.spawner.ides import IDES
from hubflow.spawner.limits import Cgroups
from hubflow.spawner.profile_mixin import ProfileSpawnerMixin

__all__ = ["HubflowLocalSpawner", "escaped_name"]


#: Job states of a job that has not ended.
ACTIVE_STATES = {state.value for state in JobState if not state.finished}


def job_gpus_in_use(uid: int, jobs_dir: Path) -> set[str]:
    """The GPUs that live job processes of account `uid` (those of a job under `jobs_dir`) use."""
    marker = f"{JOB_DIR_ENV}={jobs_dir}/".encode()
    gpus: set[str] = set()
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or entry.stat().st_uid != uid:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(marker) for v in environ):
            prefix = f"{JOB_GPUS_ENV}=".encode()
            for value in environ:
                if value.startswith(prefix):
                    gpus.update(filter(None, value[len(prefix) :].decode().split(",")))
    return gpus


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

    account_prefix = Unicode(
        "jupyter-", help="A root hub runs each user as the system account `<prefix><name>`."
    ).tag(config=True)

    accounts = Dict(
        help="Hub users who run as an existing system account instead: {user: account}."
    ).tag(config=True)

    jobs_on_stop = Enum(
        ("cancel", "keep"), "cancel", help="What stopping a server does to its running jobs."
    ).tag(config=True)

    job_network = Enum(
        ("isolated", "shared"),
        "isolated",
        help="Whether each job runs in a network namespace of its own (loopback only).",
    ).tag(config=True)

    _allocators: dict[str, GpuAllocator] = {}
    _cgroups: Cgroups | None = None
    account: Account | None = None
    cgroup_procs: list[str] = []

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

    @property
    def policy(self) -> AccountPolicy:
        """Which account this user's processes run as."""
        return AccountPolicy(self.account_prefix, self.accounts)

    @property
    def cgroups(self) -> Cgroups:
        """This machine's cgroups for servers (looked at once per hub)."""
        if HubflowLocalSpawner._cgroups is None:
            HubflowLocalSpawner._cgroups = Cgroups.detect()
        return HubflowLocalSpawner._cgroups

    @property
    def cgroup_name(self) -> str:
        """This server's cgroup: `<account>@<server>.<hub>`, the hub told by its data dir (two
        hubs on one machine may both serve an alice)."""
        assert self.account is not None
        hub = hashlib.sha256(str(Path(self.data_dir).resolve()).encode()).hexdigest()[:8]
        return f"{self.account.name}@{escaped_name(self.name) or 'default'}.{hub}"

    held_gpus: list[str] = []

    def gpu_availability(self) -> dict[str, tuple[int, int]]:
        return self.allocator.availability()

    def check_capacity(self, resolved: ResolvedProfile) -> None:
        self.allocator.check_available(resolved.gpu_count, resolved.gpu_type, resolved.gpu_shared)

    def notices(self) -> list[str]:
        """What the spawn page must say about this hub: one person only, limits not enforced."""
        said = []
        if not self.policy.isolating:
            said.append(
                "Single-person hub: it does not run as root, so every server and job runs as "
                f"its own account ({Account.current().name}) and nothing separates one login's "
                "files from another's."
            )
        if not self.cgroups.enforced:
            said.append(f"CPU and memory limits are not enforced here: {self.cgroups.reason}.")
        return said

    async def render_options_form(self) -> str:
        """The spawn page, with the hub's notices above the profiles."""
        notes = "".join(
            f'<p class="alert alert-warning hubflow-notice">{html.escape(n)}</p>'
            for n in self.notices()
        )
        return notes + await super().render_options_form()

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
        for path in (share.parent, share, share / "kernels", spec_dir):
            path.chmod(0o755)  # every account reads the kernelspec
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
        (spec_dir / "kernel.json").chmod(0o644)
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
            self.prepare_account(resolved)
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

    def prepare_account(self, resolved: ResolvedProfile) -> None:
        """The account the server runs as, its private workspace and its cgroups."""
        try:
            self.account = self.policy.account_for(self.user.name, self.workspace)
        except AccountError as e:
            raise RuntimeError(f"Cannot start a server for {self.user.name}: {e}") from None
        self.workspace.parent.mkdir(parents=True, exist_ok=True)
        self.workspace.parent.chmod(0o711)
        private_dir(self.workspace, self.account)
        self.cgroup_procs = []
        if self.cgroups.enforced:
            self.cgroup_procs = self.cgroups.create(
                self.cgroup_name, resolved.cpu_limit, resolved.mem_limit
            )
        if self.policy.isolating:
            self._progress(40, f"Running as the system account {self.account.name}")

    async def stop(self, now: bool = False) -> None:
        """Stop the process; cancel its jobs (or keep them, as the setting says). GPUs that kept
        jobs still use stay held until those jobs end; the workspace stays."""
        cancelled = self.jobs_on_stop == "cancel" and await self.cancel_jobs()
        await super().stop(now=now)
        if self.account is not None:
            if cancelled and self.cgroups.enforced:
                self.cgroups.kill(self.cgroup_name)  # what the server left behind
                await asyncio.sleep(0.5)  # killed processes take a moment to leave
                self.cgroups.remove(self.cgroup_name)
            self.hold_gpus_of_jobs(self.account)
        self.allocator.release(self.owner_key)
        self.held_gpus = []

    def hold_gpus_of_jobs(self, account: Account) -> None:
        """Keep this server's GPUs that its jobs' processes still use held until they end."""
        jobs_dir = Path(self.data_dir) / "jobs"
        in_use = set(self.allocator.held_by(self.owner_key)) & job_gpus_in_use(
            account.uid, jobs_dir
        )
        if in_use:
            self.allocator.hold(
                f"jobs of {self.owner_key}",
                sorted(in_use),
                lambda: bool(in_use & job_gpus_in_use(account.uid, jobs_dir)),
            )
            self.log.info("%s: GPUs %s stay held by running jobs", self.owner_key, sorted(in_use))

    async def cancel_jobs(self) -> bool:
        """Cancel this server's unfinished jobs through the jobs API, with the server's token;
        False if the jobs service could not be asked (its jobs are left alone then)."""
        if not self.jobs_url or not self.api_token:
            return False
        client, headers = AsyncHTTPClient(), {"Authorization": f"token {self.api_token}"}
        try:
            listed = await client.fetch(f"{self.jobs_url}api/jobs", headers=headers)
            for job in json.loads(listed.body)["jobs"]:
                if job["server_name"] == self.name and job["state"] in ACTIVE_STATES:
                    await client.fetch(
                        f"{self.jobs_url}api/jobs/{job['id']}/cancel",
                        method="POST",
                        body=b"",
                        headers=headers,
                        request_timeout=30,
                    )
                    self.log.info("%s: cancelled job %s", self.owner_key, job["id"])
        except (HTTPClientError, OSError, KeyError, ValueError) as e:
            self.log.warning("%s: could not cancel its jobs: %s", self.owner_key, e)
            return False
        return True

    # -- process details ------------------------------------------------------------------------
    def make_preexec_fn(self, name: str) -> Any:
        """Join the server's cgroups (as root), become the user's account, enter the workspace;
        the server keeps this machine's network."""
        return run_as(self.process_state(), network=False, cwd=str(self.workspace))

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        """HOME is the workspace, so user settings and `pip install --user` persist too."""
        env["USER"] = env["LOGNAME"] = self.account.name if self.account else self.user.name
        env["HOME"] = str(self.workspace)
        env["SHELL"] = "/bin/bash"
        return env

    def get_env(self) -> dict[str, str]:
        """The profile's environment, the launcher's settings and the GPUs this server holds."""
        env = super().get_env()
        env.update(self.hubflow_environment(self.resolved, str(self.workspace)))
        env["CUDA_VISIBLE_DEVICES"] = ",".join(self.held_gpus)
        share = str(self._kernel_share_dir())
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [share, env.get("JUPYTER_PATH")]))
        env.update(extension_paths(env))  # the Jobs panel and its server extension
        # The process runs the hub's own Python environment: its bin dir first on PATH.
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        return env

    def get_args(self) -> list[str]:
        """A server that runs as root needs --allow-root; one of a user's account does not."""
        args = list(super().get_args())
        account = self.account or Account.current()
        if account.uid == 0:
            args.append("--allow-root")
        return args

    # -- state ----------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        record = self.server_record(
            gpus=list(self.held_gpus),
            workspace=str(self.workspace),
            environment=dict(self.resolved.environment) if self.resolved else {},
            process=self.process_state(),
        )
        if record is not None:
            state[STATE_KEY] = record.to_state()
        return state

    def process_state(self) -> dict[str, Any]:
        """How the server's processes run, for the jobs service to run its jobs alike: the
        account, the cgroups to join and the jobs' network."""
        if self.account is None:
            return {}
        return {
            "account": self.account.to_dict(),
            "cgroups": list(self.cgroup_procs),
            "network": self.job_network,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        record = self.load_server_record(state)
        self.held_gpus = list(record.gpus) if record else []
        process = record.process if record else {}
        if process:
            self.account = Account.from_dict(process["account"])
            self.cgroup_procs = list(process.get("cgroups", []))
        if self.resolved is not None and self.held_gpus:
            self.allocator.claim(self.owner_key, self.held_gpus, self.resolved.gpu_shared)

    def clear_state(self) -> None:
        super().clear_state()
        self.resolved = None
        self.held_gpus = []
