"""The hub's log filter leaves out only JupyterHub's lines that report no fault: a refusal is
kept as the spawner's own line, a real fault keeps its traceback."""

from __future__ import annotations

import logging
import sys

from tornado import web

from hubflow.hub.logs import QuietHubLog


def record(message: str, level: int = logging.ERROR, error: BaseException | None = None):
    exc_info = None
    if error is not None:
        try:
            raise error
        except BaseException:
            exc_info = sys.exc_info()
    return logging.LogRecord("JupyterHub", level, "x.py", 1, message, (), exc_info)


def test_a_refused_spawn_is_left_to_the_spawners_line_a_fault_keeps_its_traceback() -> None:
    quiet = QuietHubLog(loopback=True)
    form = "Failed to spawn single-user server with form"
    assert not quiet.filter(record(form, error=web.HTTPError(400, "cpu: 5 is not a choice")))
    assert not quiet.filter(record(form, error=web.HTTPError(409, "quota")))
    assert quiet.filter(record(form, error=web.HTTPError(500, "broken")))
    assert quiet.filter(record(form, error=RuntimeError("broken")))
    assert not quiet.filter(record("Error starting bob's server: HTTP 400: Bad Request (x)"))
    assert quiet.filter(record("Error starting bob's server: HTTP 500: Internal Server Error"))
    assert quiet.filter(record("Unhandled error starting bob's server: boom"))


def test_tls_is_not_missed_on_loopback_only_and_a_stop_is_told_at_info() -> None:
    no_ssl = "Running JupyterHub without SSL.  I hope there is SSL termination happening"
    assert not QuietHubLog(loopback=True).filter(record(no_ssl, logging.WARNING))
    assert QuietHubLog(loopback=False).filter(record(no_ssl, logging.WARNING))
    stop = record("Received signal %s, initiating shutdown...", logging.CRITICAL)
    assert QuietHubLog(loopback=True).filter(stop)
    assert (stop.levelno, stop.levelname) == (logging.INFO, "INFO")
