"""What an operator sees when a hub starts and stops: a start-up log with nothing to worry about,
and a stop (Ctrl-C or SIGTERM) that ends the hub, its proxy, its services and, where the hub is
set to (`make demo`), users' servers within seconds, without a traceback."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.hubclient import HubClient, HubProcess

#: A line that asks an operator to look: a warning, an error or a traceback, in JupyterHub's
#: format ([W ...]), the services' ([WARNING ...]) or configurable-http-proxy's (colored words).
TROUBLE = re.compile(
    r"^\[(W|E|C|WARNING|ERROR|CRITICAL)[ \]]|\[ConfigProxy\].*(warn|error)|Traceback|Error:",
    re.MULTILINE,
)
#: The culler's first line: the last of the start-up.
CULLER_STARTED = "hubflow culler: every"
#: How long a stop may take, from the signal until no process of the hub's is left: a bound for
#: a busy 2-core test machine, where a Python process alone takes seconds to start or end.
STOP_WITHIN_S = 45
#: The project's config with the services' health checked every second (a check in every stop).
CHECKED = Path(__file__).parent / "checked_hub_config.py"


def trouble(log: str) -> list[str]:
    """The lines of `log` that ask an operator to look."""
    return [line for line in log.splitlines() if TROUBLE.search(line)]


def wait_for(hub: HubProcess, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in hub.log():
        assert time.monotonic() < deadline, f"{text!r} not logged in {timeout}s:\n{hub.log()}"
        time.sleep(0.5)


def test_a_hub_starts_without_a_warning_or_a_traceback(
    hub_factory: Callable[..., HubProcess],
) -> None:
    # Nothing asks the hub anything while it starts (a request the proxy cannot route yet is
    # logged as an error by the proxy): the log alone says when it is done.
    hub = hub_factory(start=False).start(wait=False)
    wait_for(hub, CULLER_STARTED)
    assert "JupyterHub is now running" in hub.log()
    assert trouble(hub.log()) == [], hub.log()


def ctrl_c(hub: HubProcess) -> None:
    """What a terminal's Ctrl-C does: SIGINT to the hub's whole process group."""
    assert hub.proc is not None
    os.killpg(hub.proc.pid, signal.SIGINT)


def sigterm(hub: HubProcess) -> None:
    """What a service manager does: SIGTERM to the hub."""
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGTERM)


@pytest.mark.parametrize("stop", [ctrl_c, sigterm], ids=["ctrl-c", "sigterm"])
def test_a_stop_ends_the_hub_its_services_and_users_servers_in_seconds(
    hub_factory: Callable[..., HubProcess], stop: Callable[[HubProcess], None]
) -> None:
    hub = hub_factory(extra_env={"HUBFLOW_STOP_SERVERS_WITH_HUB": "on"}, config_file=CHECKED)
    alice = HubClient(hub, "alice").login()
    alice.spawn({"profile": "cpu-small"})
    wait_for(hub, CULLER_STARTED)
    running = hub.leftover_processes()
    assert len(running) >= 5, "expected the hub, its proxy, two services and alice's server"
    started = len(hub.log())

    stop(hub)
    deadline = time.monotonic() + STOP_WITHIN_S
    while hub.leftover_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    took = STOP_WITHIN_S - (deadline - time.monotonic())

    assert hub.leftover_processes() == [], f"still running after {took:.1f}s:\n{hub.log()}"
    assert hub.proc is not None and hub.proc.wait(5) == 0
    stopping = hub.log()[started:]
    assert "Cleaning up single-user servers" in stopping
    # configurable-http-proxy says it was terminated, at its warning level: what the hub asked.
    said = [line for line in trouble(stopping) if not line.rstrip().endswith("Terminated")]
    assert said == [], stopping


def wait_gone(hub: HubProcess) -> float:
    """Wait (up to STOP_WITHIN_S) until no process of the hub's is left; the seconds it took."""
    started = time.monotonic()
    while hub.leftover_processes() and time.monotonic() - started < STOP_WITHIN_S:
        time.sleep(0.2)
    return time.monotonic() - started


def test_ctrl_c_while_the_hub_starts_ends_what_had_started(
    hub_factory: Callable[..., HubProcess],
) -> None:
    hub = hub_factory(start=False).start(wait=False)
    wait_for(hub, "Starting managed service hubflow-jobs")  # the proxy runs, a service starts
    started = len(hub.log())
    ctrl_c(hub)
    took = wait_gone(hub)
    assert hub.leftover_processes() == [], f"still running after {took:.1f}s:\n{hub.log()}"
    assert hub.proc is not None and hub.proc.wait(5) == 0
    stopping = hub.log()[started:]
    assert "while starting, stopping" in stopping
    said = [line for line in trouble(stopping) if not line.rstrip().endswith("Terminated")]
    assert said == [], stopping


def test_a_stop_as_soon_as_the_hub_answers_is_clean(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory()  # returns once the hub answers; its culler may still be starting
    started = len(hub.log())
    sigterm(hub)
    took = wait_gone(hub)
    assert hub.leftover_processes() == [], f"still running after {took:.1f}s:\n{hub.log()}"
    assert hub.proc is not None and hub.proc.wait(5) == 0
    stopping = hub.log()[started:]
    said = [line for line in trouble(stopping) if not line.rstrip().endswith("Terminated")]
    assert said == [], stopping
