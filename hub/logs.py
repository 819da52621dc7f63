"""The hub's log, readable: JupyterHub's lines that report no trouble of this hub are left out
(or, for a stop that was asked for, told at INFO).

Each such line is named here with why it says nothing an operator must act on; everything else
JupyterHub logs is kept as it is.
"""

from __future__ import annotations

import logging
import re

from tornado import web
from tornado.log import app_log

#: JupyterHub's own logger (the application's name).
HUB_LOGGER = "JupyterHub"

#: A refused spawn: hubflow's spawner logs it in one line (user, field, reason, see
#: spawner/profile_mixin.py), JupyterHub again with a traceback from the spawn form...
FORM_REFUSAL = "Failed to spawn single-user server with form"
#: ... and as an ERROR from a REST API spawn ("Error starting alice's server: HTTP 400: ...").
API_REFUSAL = re.compile(r"Error starting .+'s server: HTTP 4\d\d\b")
#: The admin view is a handler in the hub, because it reads the hub's own spawners (their
#: profiles and GPUs); JupyterHub keeps the option it is added with and warns on every start
#: (its maintainers have no plan to remove it, jupyterhub/jupyterhub#4236).
EXTRA_HANDLERS = "JupyterHub.extra_handlers is deprecated"
#: Said on every start without TLS; a hub bound to a loopback address has no traffic to encrypt.
NO_SSL = "Running JupyterHub without SSL"
#: A stop that was asked for (Ctrl-C, SIGTERM): JupyterHub says so as CRITICAL; kept, as INFO.
STOP_ASKED = "Received signal %s, initiating shutdown..."


class QuietHubLog(logging.Filter):
    """Leaves out (or tells at INFO) JupyterHub's lines that report no fault (the constants)."""

    def __init__(self, loopback: bool) -> None:
        super().__init__()
        self.loopback = loopback

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message == STOP_ASKED:
            record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        if message.startswith(FORM_REFUSAL):
            error = record.exc_info[1] if record.exc_info else None
            return not (isinstance(error, web.HTTPError) and 400 <= error.status_code < 500)
        if API_REFUSAL.match(message) or message.startswith(EXTRA_HANDLERS):
            return False
        return not (self.loopback and message.startswith(NO_SSL))


def quiet_hub_log(bind_url: str) -> None:
    """Install the filter on JupyterHub's logger for a hub that binds `bind_url` (once, however
    often the config is loaded)."""
    from hubflow.hub.auth import is_loopback_url  # a JupyterHub handler's world

    quiet = QuietHubLog(loopback=is_loopback_url(bind_url))
    # JupyterHub's handlers log to its own logger, its users and spawns to tornado's (renamed).
    for logger in (logging.getLogger(HUB_LOGGER), app_log):
        for old in [f for f in logger.filters if isinstance(f, QuietHubLog)]:
            logger.removeFilter(old)
        logger.addFilter(quiet)
