"""What every hubflow spawner shares: the profile form, its server-side check, quotas and state.

The form is never trusted: the choice is resolved again from `user_options` when the server
starts, so a spawn through the REST API is checked exactly like one through the spawn page.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any

from traitlets import HasTraits, List, Unicode, default

from hubflow.launcher.contract import JOBS_URL_ENV, PROFILE_ENV, WORKSPACE_ENV
from hubflow.profiles import (
    Holding,
    ProfileCatalog,
    QuotaError,
    ResolvedProfile,
    Usage,
    check_server,
)
from hubflow.profiles.errors import ChoiceError
from hubflow.profiles.server_record import ServerRecord
from hubflow.profiles.source import profile_source
from hubflow.spawner.spawn_page import GpuAvailability, render_profile_form, spawn_refusal

#: Form fields JupyterHub adds that are not profile choices.
_NOT_CHOICES = {"_xsrf"}
#: The most fields a spawn form or a REST API spawn's options may hold.
MAX_FORM_FIELDS = 64
#: The longest field name and the longest value (far beyond any profile slug, option choice,
#: number or free-text choice), checked before anything else looks at them.
MAX_NAME_CHARS = 256
MAX_VALUE_CHARS = 1024


def flatten_form(form: Mapping[str, Any]) -> dict[str, str]:
    """Tornado's form (name -> [values]) as name -> value; a repeated field is refused."""
    flat: dict[str, Any] = {}
    for name, value in form.items():
        if isinstance(value, list):
            if len(value) != 1 and name not in _NOT_CHOICES:
                raise ChoiceError(name, f"{name}: expected one value, got {len(value)}")
            value = value[0] if value else ""
        flat[name] = value
    return form_choices(flat)


def form_choices(options: Mapping[str, Any]) -> dict[str, str]:
    """The profile choices in a spawn's options (the form's, or a REST API spawn's JSON): at most
    MAX_FORM_FIELDS names of at most MAX_NAME_CHARS, each with one string of at most
    MAX_VALUE_CHARS and no control characters. ChoiceError names the first bad field."""
    if not isinstance(options, Mapping):
        raise ChoiceError("user_options", "must be a JSON object of field names and strings")
    if len(options) > MAX_FORM_FIELDS:
        raise ChoiceError("user_options", f"{len(options)} fields: at most {MAX_FORM_FIELDS}")
    choices: dict[str, str] = {}
    for name, value in options.items():
        if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
            raise ChoiceError("user_options", f"a field name longer than {MAX_NAME_CHARS}")
        if name in _NOT_CHOICES:
            continue
        if not isinstance(value, str):
            raise ChoiceError(name, f"{name}: expected text, got {_json_type(value)}")
        if len(value) > MAX_VALUE_CHARS:
            raise ChoiceError(
                name, f"{name}: {len(value)} characters, at most {MAX_VALUE_CHARS} are accepted"
            )
        if not value.isprintable():
            raise ChoiceError(name, f"{name}: control characters (such as newlines) not allowed")
        choices[name] = value
    return choices


def _json_type(value: Any) -> str:
    """A value's type as JSON names it."""
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


class ProfileSpawnerMixin(HasTraits):
    """Profiles, form and quotas for a JupyterHub spawner; mixed in before the spawner class."""

    profile_paths = List(
        Unicode(),
        help="""Profile files or folders of *.yaml files (profiles/schema.json).

        They are loaded when the hub starts (a bad file stops it) and reloaded when they change
        (a bad edit is logged and the last good profiles stay in force).
        """,
    ).tag(config=True)

    jobs_url = Unicode(
        "",
        help="The jobs API base URL put into each server's environment as HUBFLOW_JOBS_URL.",
    ).tag(config=True)

    resolved: ResolvedProfile | None = None
    #: The jobs holding GPUs of their own (as of `refresh_job_holdings`): they count against
    #: the same GPU quotas as servers. Empty in local mode, where jobs use their server's GPUs.
    job_holdings: list[Holding] = []

    # Attributes provided by jupyterhub.spawner.Spawner.
    user: Any
    user_options: dict[str, Any]
    active: bool
    log: Any

    @property
    def catalog(self) -> ProfileCatalog:
        """The profiles in force now."""
        return profile_source(self.profile_paths).current()

    @property
    def user_groups(self) -> list[str]:
        """The names of the groups the user belongs to (from the login provider)."""
        return sorted(g.name for g in self.user.groups)

    @default("options_form")
    def _options_form_default(self) -> Any:
        return lambda spawner: spawner.render_options_form()

    @default("options_from_form")
    def _options_from_form_default(self) -> Any:
        return lambda form, spawner: spawner.parse_options_form(form)

    @default("apply_user_options")
    def _apply_user_options_default(self) -> Any:
        # `start` resolves and checks the options (`admit`), from the form and the REST API
        # alike; saying so here keeps JupyterHub from logging them as unhandled.
        return lambda spawner, options: None

    def gpu_availability(self) -> GpuAvailability | Awaitable[GpuAvailability]:
        """GPU product -> (free, total) right now (or an awaitable of it); each spawner kind
        knows its own inventory."""
        return {}

    def ide_unavailable_reasons(self) -> dict[str, str]:
        """IDE name -> why it cannot start here; empty when every IDE can."""
        return {}

    async def render_options_form(self) -> str:
        """The spawn page: the profiles this user's groups allow, with what is free now; none
        when no profile is defined (the server starts at once, as with KubeSpawner)."""
        if not self.catalog.profiles:
            return ""
        profiles = self.catalog.profiles_for(self.user_groups, is_admin=bool(self.user.admin))
        availability = self.gpu_availability()
        if inspect.isawaitable(availability):
            availability = await availability
        await self.refresh_job_holdings()
        return render_profile_form(
            profiles,
            gpu_availability=availability,
            ide_unavailable=self.ide_unavailable_reasons(),
            quota_refusal=self.quota_refusal,
        )

    def check_capacity(self, resolved: ResolvedProfile) -> None:
        """Raise if the resources the profile needs cannot be had now (each spawner kind knows)."""

    def parse_options_form(self, form: Mapping[str, Any]) -> dict[str, str]:
        """Check a posted form on the server side; an error is shown on the spawn page."""
        try:
            options = flatten_form(form)
        except ChoiceError as e:
            raise self.refuse(e) from None
        self.admit(options)
        return options

    def admit(self, options: Mapping[str, Any]) -> ResolvedProfile:
        """Resolve the options and check quotas and capacity; refusals name what was wrong.

        A refusal is an HTTPError carrying `jupyterhub_message`, so JupyterHub shows its words
        on the spawn page, the progress page and in REST API answers.
        """
        try:
            resolved = self.resolve_options(options)
            self.check_quota(resolved)
            self.check_capacity(resolved)
        except (ValueError, RuntimeError, QuotaError) as e:
            raise self.refuse(e) from None
        return resolved

    def refuse(self, error: Exception) -> Exception:
        """The refusal of a spawn (see spawn_page.spawn_refusal), logged in one line."""
        field = getattr(error, "field", None) or getattr(error, "limit", None) or "profile"
        self.log.warning("Spawn refused for %s: %s: %s", self.user.name, field, error)
        return spawn_refusal(error)

    def resolve_options(self, options: Mapping[str, Any]) -> ResolvedProfile:
        """The profile and choices in `options`, checked against what this user may have."""
        resolved = self.catalog.resolve(
            form_choices(options), self.user_groups, is_admin=bool(self.user.admin)
        )
        reason = self.ide_unavailable_reasons().get(resolved.ide)
        if reason:
            raise ValueError(f"IDE: {reason}")
        return resolved

    def _other_active_servers(self) -> Iterator[tuple[Any, ProfileSpawnerMixin]]:
        users = self.user.settings.get("users") or {}
        for user in list(users.values()):
            for spawner in list(user.spawners.values()):
                if spawner is self or not isinstance(spawner, ProfileSpawnerMixin):
                    continue
                if spawner.resolved is not None and spawner.active:
                    yield user, spawner

    def check_quota(self, resolved: ResolvedProfile) -> None:
        """Refuse a start over the user's or a group's server and GPU limits (QuotaError)."""
        self.check_server_quota(resolved.gpu_count)

    def quota_refusal(self, requested_gpus: int) -> str | None:
        """Why the quotas forbid one more server with `requested_gpus` now (None: they allow it)."""
        try:
            self.check_server_quota(requested_gpus)
        except QuotaError as e:
            return str(e)
        return None

    async def refresh_job_holdings(self) -> None:
        """Bring `job_holdings` up to date (each spawner kind knows where jobs hold GPUs)."""

    def check_server_quota(self, requested_gpus: int) -> None:
        """Raise QuotaError if one more server holding `requested_gpus` exceeds a limit, counting
        the servers and the jobs (`job_holdings`) the user and their groups hold."""
        servers = [
            Holding(user.name, frozenset(g.name for g in user.groups), spawner.resolved.gpu_count)
            for user, spawner in self._other_active_servers()
            if spawner.resolved is not None
        ]
        usage = Usage.of([*servers, *self.job_holdings], self.user.name, self.user_groups)
        check_server(self.catalog.effective_quota(self.user_groups), usage, requested_gpus)

    def hubflow_environment(
        self, resolved: ResolvedProfile | None, workspace: str
    ) -> dict[str, str]:
        """What every hubflow server's environment holds: the profile's variables, which profile
        it runs, where its workspace is and where the jobs API is."""
        env = dict(resolved.environment) if resolved is not None else {}
        env[PROFILE_ENV] = resolved.slug if resolved is not None else ""
        env[WORKSPACE_ENV] = workspace
        if self.jobs_url:
            env[JOBS_URL_ENV] = self.jobs_url
        return env

    def server_record(self, **facts: Any) -> ServerRecord | None:
        """The record of this server for its state (read by the jobs service and the culler
        through the hub API), with the spawner's own `facts`; None before a profile is chosen."""
        if self.resolved is None:
            return None
        return ServerRecord(
            **{"workspace": "", "gpus": [], "environment": {}, **facts},
            profile=self.resolved.to_dict(),
        )

    def load_server_record(self, state: Mapping[str, Any]) -> ServerRecord | None:
        """Restore the resolved profile from a spawner state, after a hub restart; the record."""
        record = ServerRecord.from_spawner_state(state)
        self.resolved = record.resolved if record else None
        return record
