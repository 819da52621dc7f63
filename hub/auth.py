"""Login wiring: the local demo login, the production OAuth/OIDC logins (oauthenticator), and
the narrowing of a local hub that cannot isolate its users (it is not root) to one person."""

from __future__ import annotations

import hmac
import ipaddress
import os
import pwd
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlparse

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Bool, Dict, Unicode, default

#: The demo's users: two groups, so the access rules show at once (only gpu-users see GPU profiles).
DEMO_USERS: dict[str, dict[str, Any]] = {
    "alice": {"groups": ["ml-team", "gpu-users"]},
    "bob": {"groups": ["ml-team"]},
    "admin": {"groups": ["ml-team", "gpu-users"], "admin": True},
}

#: Production logins: `HUBFLOW_AUTHENTICATOR` value -> oauthenticator's entry point name.
OAUTH_PROVIDERS = {
    "github": "github",
    "gitlab": "gitlab",
    "google": "google",
    "oidc": "generic-oauth",
    "generic": "generic-oauth",
}


def oauth_authenticator(entry_point: str) -> type:
    """The oauthenticator class JupyterHub registers under `entry_point` (e.g. "github")."""
    (found,) = entry_points(group="jupyterhub.authenticators", name=entry_point)
    authenticator: type = found.load()
    return authenticator


def is_loopback_url(url: str) -> bool:
    """True when `url` binds only a loopback address (an empty host means every interface)."""
    return is_loopback_host(urlparse(url).hostname or "")


def is_loopback_host(host: str) -> bool:
    """True when `host` is a loopback address or `localhost` (empty: every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def single_person_hook(person: str) -> Callable[[Any, Any, dict[str, Any]], dict[str, Any]]:
    """A post-login hook that lets only `person` in (a hub that is not root serves only the
    account it runs as: it cannot keep one user's processes from another's files)."""

    def only_person(authenticator: Any, handler: Any, auth_model: dict[str, Any]) -> dict[str, Any]:
        if auth_model.get("name") != person:
            raise web.HTTPError(
                403,
                f"This hub runs as {person!r}, not as root, so it cannot keep users apart and "
                f"serves {person!r} only; {auth_model.get('name')!r} may not log in.",
            )
        return auth_model

    return only_person


def hub_account() -> str:
    """The name of the system account the hub runs as (not what $USER says)."""
    return pwd.getpwuid(os.geteuid()).pw_name


class DemoAuthenticator(Authenticator):
    """A fixed set of demo users with one shared password, for local mode only.

    It refuses to run when the hub listens on anything but a loopback address:
    configure a real authenticator (oauthenticator) before exposing the hub.
    """

    demo_users = Dict(
        default_value=DEMO_USERS,
        help="""Demo users: name -> {"groups": [...], "admin": bool}.""",
    ).tag(config=True)

    password = Unicode(
        "hubflow",
        help="The password every demo user logs in with.",
    ).tag(config=True)

    loopback_hub_api = Bool(
        True,
        help="Refuse to run when the hub's own API (hub_ip) listens beyond loopback, where the "
        "login form is served too. On a cluster the hub API listens for users' pods at its "
        "Service, and this is off.",
    ).tag(config=True)

    single_person = Bool(
        False,
        help="The hub is not root: every demo user runs as the hub's own account (a demo for "
        "one person, said at start and on the spawn page).",
    ).tag(config=True)

    @default("manage_groups")
    def _manage_groups_default(self) -> bool:
        return True

    @default("allowed_users")
    def _allowed_users_default(self) -> set[str]:
        return set(self.demo_users)

    @default("admin_users")
    def _admin_users_default(self) -> set[str]:
        return {name for name, spec in self.demo_users.items() if spec.get("admin")}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        binds = []
        if getattr(self.parent, "bind_url", ""):
            binds.append(("hub", urlparse(self.parent.bind_url).hostname or ""))
        if self.parent is not None and self.loopback_hub_api:
            binds.append(("hub API", getattr(self.parent, "hub_ip", "")))
        for what, host in binds:
            if not is_loopback_host(host):
                raise ValueError(
                    f"The demo login only listens on 127.0.0.1, but the {what} is set to bind "
                    f"{host or 'every address'!r}. Configure a real authenticator "
                    "(HUBFLOW_AUTHENTICATOR=github|gitlab|google|oidc) before serving other "
                    "machines."
                )

    async def authenticate(
        self, handler: Any, data: dict[str, str] | None
    ) -> dict[str, Any] | None:
        """Accept a demo user with the demo password; hand JupyterHub the user's groups. No
        data (a token request that carries no credentials) is no login."""
        if not data:
            return None
        name = data.get("username", "")
        spec = self.demo_users.get(name)
        if spec is None or not hmac.compare_digest(data.get("password", ""), self.password):
            return None
        return {
            "name": name,
            "groups": list(spec.get("groups", [])),
            "admin": bool(spec.get("admin")),
        }

    def login_banner(self) -> str:
        """How to log in, printed when the hub starts."""
        lines = [
            f"  {name:<6} groups: {', '.join(spec.get('groups', []))}"
            + ("  (admin)" if spec.get("admin") else "")
            for name, spec in self.demo_users.items()
        ]
        banner = f"Demo login (password for everyone: {self.password!r}):\n" + "\n".join(lines)
        if self.single_person:
            banner += (
                f"\nSingle-person demo: the hub runs as {hub_account()!r}, not root, so every demo "
                "user's servers and jobs run as that one account and can read each other's files."
            )
        return banner
