"""Login wiring: the local demo login and the production OAuth/OIDC logins (oauthenticator)."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any
from urllib.parse import urlparse

from jupyterhub.auth import Authenticator
from traitlets import Dict, Unicode, default

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


def is_loopback_url(url: str) -> bool:
    """True when `url` binds only a loopback address (an empty host means every interface)."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        bind_url = getattr(self.parent, "bind_url", "")
        if bind_url and not is_loopback_url(bind_url):
            raise ValueError(
                f"The demo login only listens on 127.0.0.1, but the hub is set to bind {bind_url!r}. "
                "Configure a real authenticator (HUBFLOW_AUTHENTICATOR=github|gitlab|google|oidc) "
                "before serving other machines."
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
        return f"Demo login (password for everyone: {self.password!r}):\n" + "\n".join(lines)
