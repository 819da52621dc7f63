"""Every operator setting of hubflow, declared once: a traitlet with its help text whose default
comes from its `HUBFLOW_*` environment variable.

The hub reads them from its environment and hands each service the same variables, as it
resolved them, so the jobs service and the culler read the same declarations
(`HubflowSettings.from_env()` in every process). A bad value raises `SettingsError` naming the
variable. `python -m hubflow.hub.settings` prints the reference in docs/settings.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from traitlets import Bool, Enum, Integer, List, TraitError, TraitType, Unicode, validate
from traitlets.config import Configurable

from hubflow.profiles.quantities import parse_duration

#: The profile set shipped with hubflow, used when HUBFLOW_PROFILES is not set.
DEFAULT_PROFILES = Path(__file__).resolve().parent.parent / "profiles" / "default.yaml"

MODES = ("local", "kubernetes")
KUBEFLOW_APIS = ("auto", "trainjob", "v1")
#: A setting's value is never longer than this (checked before it is parsed).
MAX_VALUE_CHARS = 4096

S = TypeVar("S", bound="EnvSettings")


class SettingsError(ValueError):
    """An environment variable holds a value hubflow cannot use; the message names it."""


def env(name: str, must: str) -> dict[str, str]:
    """The metadata of a setting: its variable and, in words, what a good value is."""
    return {"env": name, "must": must}


class Duration(Integer):
    """Seconds, written as 90, 30m, 2h or 1h30m."""

    def from_string(self, s: str) -> int:
        return parse_duration(int(s) if s.isdigit() else s)


class Switch(Bool):
    """on or off."""

    def from_string(self, s: str) -> bool:
        if s not in ("on", "off"):
            raise ValueError(s)
        return s == "on"


class PathList(List):
    """Paths separated by the system's path separator (`:`)."""

    def from_string(self, s: str) -> list[str]:
        return [p for p in s.split(os.pathsep) if p]


class CommaList(List):
    """Names separated by commas."""

    def from_string(self, s: str) -> list[str]:
        return [p.strip() for p in s.split(",") if p.strip()]


class Port(Integer):
    """A TCP port number."""

    def __init__(self, default_value: int, **kwargs: Any) -> None:
        super().__init__(default_value, min=1, max=65535, **kwargs)


def _env_text(trait: TraitType, value: Any) -> str:
    """How `value` of `trait` is written in its variable ("" for unset)."""
    if value is None:
        return ""
    if isinstance(trait, Switch):
        return "on" if value else "off"
    if isinstance(trait, PathList):
        return os.pathsep.join(str(v) for v in value)
    if isinstance(trait, CommaList):
        return ",".join(value)
    return str(value)


class EnvSettings(Configurable):
    """Settings whose traits are tagged with their environment variable (see `env`)."""

    @classmethod
    def env_traits(cls) -> dict[str, TraitType]:
        """The settings of this class, by attribute name, in declaration order."""
        return {n: t for n, t in cls.class_traits().items() if "env" in t.metadata}

    @classmethod
    def from_env(cls: type[S], environ: Mapping[str, str] = os.environ) -> S:
        """Read the variables; a bad value raises SettingsError naming its variable."""
        values: dict[str, Any] = {}
        for name, trait in cls.env_traits().items():
            variable, raw = trait.metadata["env"], environ.get(trait.metadata["env"], "")
            if raw == "":
                continue
            if len(raw) > MAX_VALUE_CHARS:
                raise SettingsError(f"{variable}: longer than {MAX_VALUE_CHARS} characters")
            try:
                values[name] = trait.from_string(raw)
                cls(**{name: values[name]})  # the trait's own checks
            except (TraitError, ValueError, OverflowError) as e:
                said = str(e) if str(e).startswith(variable) else ""
                raise SettingsError(
                    said or f"{variable}={raw!r}: must be {trait.metadata['must']}"
                ) from None
        return cls(**values)

    def environment(self) -> dict[str, str]:
        """The variables that give another process these settings as this one has them."""
        return {
            t.metadata["env"]: _env_text(t, getattr(self, n)) for n, t in self.env_traits().items()
        }

    def _check(self, name: str, value: Any, good: bool) -> Any:
        if not good:
            trait = self.traits()[name]
            raise TraitError(
                f"{trait.metadata['env']}={_env_text(trait, value)!r}: must be "
                f"{trait.metadata['must']}"
            )
        return value


class HubflowSettings(EnvSettings):
    """Where hubflow listens, keeps its data and finds its profiles, and how users log in.

    On a cluster the hub binds `hub_ip` (0.0.0.0), users' pods reach it at `hub_connect_url`
    (its Service), the jobs service binds `jobs_ip` and is reached at `jobs_connect_url`, and the
    proxy runs on its own when `proxy_api_url` names its API.
    """

    mode = Enum(
        MODES, "local", help="`local` (users' servers are processes here) or `kubernetes` (pods)."
    ).tag(config=True, **env("HUBFLOW_MODE", "one of local, kubernetes"))
    profile_paths = PathList(
        Unicode(),
        [str(DEFAULT_PROFILES)],
        help="Profile files or folders of them, separated by `:` (default: the shipped profiles).",
    ).tag(config=True, **env("HUBFLOW_PROFILES", "existing files or folders separated by ':'"))
    data_dir = Unicode(
        help="Where the hub's database, users' workspaces, job records and logs live (default: ./data)."
    ).tag(config=True, **env("HUBFLOW_DATA_DIR", "a directory path"))
    hub_db_url = Unicode(
        None,
        allow_none=True,
        help="The hub's own database, any SQLAlchemy URL (default: SQLite in the data dir).",
    ).tag(config=True, **env("HUBFLOW_HUB_DB_URL", "an SQLAlchemy URL"))
    hub_db_pool_size = Integer(
        5,
        min=1,
        help="PostgreSQL/MySQL: connections the hub keeps open to its database (JupyterHub "
        "uses one at a time; a few serve its API's bursts).",
    ).tag(config=True, **env("HUBFLOW_HUB_DB_POOL_SIZE", "an integer of at least 1"))
    hub_db_max_overflow = Integer(
        10,
        min=0,
        help="PostgreSQL/MySQL: extra connections the hub may open at a peak, closed after.",
    ).tag(config=True, **env("HUBFLOW_HUB_DB_MAX_OVERFLOW", "an integer of at least 0"))
    ip = Unicode("127.0.0.1", help="Where the hub (its proxy) listens for users.").tag(
        config=True, **env("HUBFLOW_IP", "an IP address")
    )
    port = Port(8000, help="The port users reach the hub on.").tag(
        config=True, **env("HUBFLOW_PORT", "a port number from 1 to 65535")
    )
    authenticator = Enum(
        ("demo", "github", "gitlab", "google", "oidc", "generic"),
        "demo",
        help="How users log in: `demo` (fixed demo users, loopback only) or an OAuth provider "
        "(`github`, `gitlab`, `google`, `oidc`); oauthenticator reads OAUTH_CLIENT_ID, "
        "OAUTH_CLIENT_SECRET and OAUTH_CALLBACK_URL.",
    ).tag(config=True, **env("HUBFLOW_AUTHENTICATOR", "one of demo, github, gitlab, google, oidc"))
    oauth_groups_key = Unicode(
        "oauth_user.groups", help="Where a user's groups are in the provider's answer."
    ).tag(config=True, **env("HUBFLOW_OAUTH_GROUPS_KEY", "a dotted key"))
    oauth_username_claim = Unicode(
        "preferred_username", help="`oidc`: the claim that holds the user name."
    ).tag(config=True, **env("HUBFLOW_OAUTH_USERNAME_CLAIM", "a claim name"))
    allowed_groups = CommaList(
        Unicode(), help="With an OAuth login: only members of these groups may log in (`a,b`)."
    ).tag(config=True, **env("HUBFLOW_ALLOWED_GROUPS", "group names separated by ','"))
    gpus = Unicode(
        "",
        help="Local mode: this machine's GPUs as `0:NVIDIA-A100,1:NVIDIA-A100`, or `none` "
        "(default: what `nvidia-smi` finds).",
    ).tag(config=True, **env("HUBFLOW_GPUS", "GPUs such as 0:NVIDIA-A100,1:NVIDIA-A100, or none"))
    namespace = Unicode(
        "hubflow", help="Kubernetes mode: the namespace of users' pods, volumes and jobs."
    ).tag(config=True, **env("HUBFLOW_NAMESPACE", "a namespace name"))
    hub_ip = Unicode(
        "127.0.0.1", help="Where the hub's own API listens (`0.0.0.0` in a cluster)."
    ).tag(config=True, **env("HUBFLOW_HUB_IP", "an IP address"))
    hub_port = Port(8081, help="The hub API's port.").tag(
        config=True, **env("HUBFLOW_HUB_PORT", "a port number from 1 to 65535")
    )
    hub_connect_url = Unicode(
        None,
        allow_none=True,
        help="How users' servers reach the hub API (its Service in a cluster; default: the hub's "
        "address).",
    ).tag(config=True, **env("HUBFLOW_HUB_CONNECT_URL", "a URL"))
    proxy_api_port = Port(8001, help="The proxy API's port, when the hub starts its proxy.").tag(
        config=True, **env("HUBFLOW_PROXY_API_PORT", "a port number from 1 to 65535")
    )
    proxy_api_url = Unicode(
        None,
        allow_none=True,
        help="The API of a proxy that runs on its own (the chart's); its token in "
        "CONFIGPROXY_AUTH_TOKEN. Unset: the hub starts its proxy.",
    ).tag(config=True, **env("HUBFLOW_PROXY_API_URL", "a URL"))
    jobs_ip = Unicode(
        "127.0.0.1", help="Where the jobs service listens (`0.0.0.0` in a cluster)."
    ).tag(config=True, **env("HUBFLOW_JOBS_IP", "an IP address"))
    jobs_port = Port(8090, help="The jobs service's port.").tag(
        config=True, **env("HUBFLOW_JOBS_PORT", "a port number from 1 to 65535")
    )
    jobs_connect_url = Unicode(
        None,
        allow_none=True,
        help="How the proxy and users' servers reach the jobs API (the hub's Service in a "
        "cluster; default: the jobs service's address).",
    ).tag(config=True, **env("HUBFLOW_JOBS_CONNECT_URL", "a URL"))
    stop_servers_with_hub = Switch(
        False,
        help="Whether stopping the hub (Ctrl-C, SIGTERM) stops users' servers too (`make demo` "
        "sets `on`). `off`: they keep running and a restarted hub finds them again.",
    ).tag(config=True, **env("HUBFLOW_STOP_SERVERS_WITH_HUB", "on or off"))

    @validate("profile_paths")
    def _profiles_exist(self, proposal: Any) -> list[str]:
        for path in proposal.value:
            if not Path(path).exists():
                raise TraitError(f"HUBFLOW_PROFILES: {path!r} does not exist")
        return list(proposal.value)

    @property
    def data_path(self) -> Path:
        """The data directory, absolute."""
        return Path(self.data_dir or Path.cwd() / "data").resolve()


class JobsSettings(EnvSettings):
    """How the jobs service keeps and runs jobs."""

    db_url = Unicode(
        None,
        allow_none=True,
        help="The jobs service's database, any SQLAlchemy URL (default: SQLite in the data dir).",
    ).tag(config=True, **env("HUBFLOW_JOBS_DB_URL", "an SQLAlchemy URL"))
    db_pool_size = Integer(
        5,
        min=1,
        help="PostgreSQL/MySQL: connections the jobs service keeps open to its database (its "
        "requests run one at a time on one event loop; a few cover the scheduler's rounds).",
    ).tag(config=True, **env("HUBFLOW_JOBS_DB_POOL_SIZE", "an integer of at least 1"))
    db_max_overflow = Integer(
        10,
        min=0,
        help="PostgreSQL/MySQL: extra connections the jobs service may open at a peak.",
    ).tag(config=True, **env("HUBFLOW_JOBS_DB_MAX_OVERFLOW", "an integer of at least 0"))
    db_upgrade = Switch(
        True,
        help="Whether the jobs service upgrades an older jobs database's schema when it starts "
        "(`off`: it refuses to start and names the command, `python -m hubflow.jobs.db upgrade`).",
    ).tag(config=True, **env("HUBFLOW_JOBS_DB_UPGRADE", "on or off"))
    kubeflow_api = Enum(
        KUBEFLOW_APIS,
        "auto",
        help="Kubernetes mode: jobs as `TrainJob` where served, else `PyTorchJob`/`TFJob` "
        "(`auto`), or force `trainjob` or `v1`.",
    ).tag(config=True, **env("HUBFLOW_KUBEFLOW_API", "one of auto, trainjob, v1"))
    job_ttl = Duration(
        3600, help="Kubernetes mode: how long a finished job's resources are kept."
    ).tag(config=True, **env("HUBFLOW_JOB_TTL", "a duration such as 90, 30m or 2h"))
    job_retention = Duration(
        7 * 86400,
        help="How long a finished job's record, logs and result are kept, in both modes (its "
        "Kubernetes objects go after `job_ttl`); 0 keeps them for ever.",
    ).tag(config=True, **env("HUBFLOW_JOB_RETENTION", "a duration such as 7d, 12h, or 0 to keep"))
    max_log_follows = Integer(
        8,
        help="How many job logs one user may follow (`logs?follow=1`) at once; one more is "
        "refused with 429.",
    ).tag(config=True, **env("HUBFLOW_JOBS_MAX_LOG_FOLLOWS", "an integer of at least 1"))
    max_queued_jobs = Integer(
        20,
        help="How many jobs one user may have waiting (Queued) at once; a submit past it is "
        "refused with 429.",
    ).tag(config=True, **env("HUBFLOW_JOBS_MAX_QUEUED", "an integer of at least 1"))
    max_log_line = Integer(
        65536,
        help="The longest log line, in bytes, the logs API sends as one line; a longer line is "
        "sent in pieces of this size, as it is written.",
    ).tag(config=True, **env("HUBFLOW_JOBS_MAX_LOG_LINE", "a number of bytes from 1024 to 1048576"))
    max_uploads = Integer(
        2,
        help="How many submits one user may be sending at once (each body may hold a payload "
        "of hundreds of MiB, kept in memory until it is written); one more is refused with 429.",
    ).tag(config=True, **env("HUBFLOW_JOBS_MAX_UPLOADS", "an integer of at least 1"))

    max_request_rate = Integer(
        20,
        help="How many requests a second one user's calls to the jobs API may make, on "
        "average; one past it waits its turn (up to HUBFLOW_JOBS_REQUEST_WAIT, then it is "
        "refused with 429), so one user's flood costs the service no more than this; every 10 "
        "jobs a list holds and every 64 KiB of log lines sent count as one more request. 0: no "
        "limit.",
    ).tag(config=True, **env("HUBFLOW_JOBS_MAX_REQUEST_RATE", "an integer of at least 0"))
    request_burst = Integer(
        40,
        help="How many requests one user may make at once, above HUBFLOW_JOBS_MAX_REQUEST_RATE, "
        "without waiting.",
    ).tag(config=True, **env("HUBFLOW_JOBS_REQUEST_BURST", "an integer of at least 1"))
    request_wait = Duration(
        10,
        help="The longest a request past HUBFLOW_JOBS_MAX_REQUEST_RATE waits its turn; one that "
        "would wait longer is refused with 429.",
    ).tag(config=True, **env("HUBFLOW_JOBS_REQUEST_WAIT", "a duration such as 10 or 1m"))

    @validate("max_log_follows", "max_queued_jobs", "max_uploads", "request_burst")
    def _at_least_one(self, proposal: Any) -> int:
        return self._check(proposal.trait.name, proposal.value, proposal.value >= 1)

    @validate("max_request_rate")
    def _not_negative(self, proposal: Any) -> int:
        return self._check(proposal.trait.name, proposal.value, proposal.value >= 0)

    @validate("max_log_line")
    def _line_bounds(self, proposal: Any) -> int:
        return self._check(proposal.trait.name, proposal.value, 1024 <= proposal.value <= 2**20)

    pool_idle_timeout = Duration(
        1800, help="A warm pool that runs no cell this long is released (0: never)."
    ).tag(config=True, **env("HUBFLOW_POOL_IDLE_TIMEOUT", "a duration such as 90, 30m or 2h"))
    pool_gpu_idle_timeout = Duration(
        600, help="A warm pool holding GPUs that runs no cell this long is released (0: never)."
    ).tag(config=True, **env("HUBFLOW_POOL_GPU_IDLE_TIMEOUT", "a duration such as 90, 10m or 1h"))

    def database_url(self, data_dir: Path) -> str:
        """The database URL in force."""
        return self.db_url or f"sqlite:///{data_dir / 'jobs.sqlite'}"


class CullingSettings(EnvSettings):
    """Deployment-wide culling defaults and rhythms, in seconds (0: never / no maximum age)."""

    enabled = Switch(True, help="Whether idle and old servers are culled.").tag(
        config=True, **env("HUBFLOW_CULLING", "on or off")
    )
    idle_timeout = Duration(3600, help="A server idle this long is stopped.").tag(
        config=True, **env("HUBFLOW_CULL_IDLE_TIMEOUT", "a duration such as 90, 30m or 2h")
    )
    gpu_idle_timeout = Duration(1200, help="A server holding GPUs idle this long is stopped.").tag(
        config=True, **env("HUBFLOW_CULL_GPU_IDLE_TIMEOUT", "a duration such as 90, 30m or 2h")
    )
    max_age = Duration(
        86400, help="A server this old is stopped, busy or not (0: no maximum)."
    ).tag(config=True, **env("HUBFLOW_CULL_MAX_AGE", "a duration such as 90, 30m or 2h"))
    warn_before = Duration(600, help="How long before a cull its user is warned.").tag(
        config=True, **env("HUBFLOW_CULL_WARN_BEFORE", "a duration such as 90, 30m or 2h")
    )
    every = Duration(60, help="How often the culler looks.").tag(
        config=True, **env("HUBFLOW_CULL_EVERY", "a duration of at least 1 second, such as 60")
    )
    activity_interval = Duration(60, help="How often users' servers report real activity.").tag(
        config=True, **env("HUBFLOW_ACTIVITY_INTERVAL", "a duration of at least 1 second")
    )

    @validate("every", "activity_interval")
    def _at_least_a_second(self, proposal: Any) -> int:
        return self._check(proposal.trait.name, proposal.value, proposal.value >= 1)


class LocalSettings(EnvSettings):
    """Local mode: the accounts users' servers and jobs run as, their jobs' network and fate."""

    account_prefix = Unicode(
        "jupyter-",
        help="When the hub runs as root: each hub user's servers and jobs run as the system "
        "account `<prefix><escaped name>` (at most 32 characters), created on first start.",
    ).tag(config=True, **env("HUBFLOW_ACCOUNT_PREFIX", "lowercase letters, digits, '-' or '_'"))
    accounts = CommaList(
        Unicode(),
        help="Hub users who run as an existing system account instead: `alice=asmith,bob=bjones`.",
    ).tag(config=True, **env("HUBFLOW_ACCOUNTS", "user=account pairs separated by ','"))
    jobs_on_stop = Enum(
        ("cancel", "keep"),
        "cancel",
        help="What stopping a server does to its running jobs: `cancel` them, or `keep` them "
        "running (their GPUs stay held until they end).",
    ).tag(config=True, **env("HUBFLOW_JOBS_ON_STOP", "one of cancel, keep"))
    job_network = Enum(
        ("isolated", "shared"),
        "isolated",
        help="`isolated`: each local job runs in a network namespace of its own with loopback "
        "only (no other process can join its rendezvous; the job reaches no network); `shared`: "
        "jobs use this machine's network and their rendezvous on 127.0.0.1 is open to every "
        "local process.",
    ).tag(config=True, **env("HUBFLOW_JOB_NETWORK", "one of isolated, shared"))

    @validate("account_prefix")
    def _prefix_is_a_name(self, proposal: Any) -> str:
        good = re.fullmatch(r"[a-z_][a-z0-9_-]{0,15}", proposal.value) is not None
        return str(self._check("account_prefix", proposal.value, good))

    @validate("accounts")
    def _pairs(self, proposal: Any) -> list[str]:
        good = all(re.fullmatch(r"[^=\s]+=[a-z_][a-z0-9_.-]*", p) for p in proposal.value)
        return list(self._check("accounts", proposal.value, good))

    @property
    def account_map(self) -> dict[str, str]:
        """Hub user -> existing system account, from `accounts`."""
        return dict(pair.split("=", 1) for pair in self.accounts)


#: Every settings class, in the order of the reference.
SETTINGS_CLASSES: tuple[type[EnvSettings], ...] = (
    HubflowSettings,
    JobsSettings,
    CullingSettings,
    LocalSettings,
)


def _reference_rows() -> Iterator[str]:
    for cls in SETTINGS_CLASSES:
        yield f"\n## {cls.__name__}\n\n{(cls.__doc__ or '').strip().splitlines()[0]}\n"
        yield "| variable | default | meaning |"
        yield "| --- | --- | --- |"
        for trait in cls.env_traits().values():
            default = _env_text(trait, trait.default())
            if isinstance(trait, PathList):
                default = "the shipped `profiles/default.yaml`"
            shown = f"`{default}`" if default and not default.startswith("the ") else default
            yield f"| `{trait.metadata['env']}` | {shown or 'unset'} | {trait.help} |"


def reference() -> str:
    """The settings reference (docs/settings.md), generated from the declarations above."""
    head = (
        "# Settings reference\n\n"
        "Generated from `hub/settings.py` by `python -m hubflow.hub.settings > docs/settings.md`;"
        " a test fails when this file is stale. Every setting is read from its environment variable"
        " by the hub, which hands the same values to its services. Durations are written as `90`"
        " (seconds), `30m`, `2h` or `1h30m`.\n"
    )
    return head + "\n".join(_reference_rows()) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
