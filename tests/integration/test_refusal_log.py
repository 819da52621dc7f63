"""A refused spawn is one line in the hub's log (the user, the field, the reason), whether it came
from the spawn form or the REST API; a token request without credentials is a 403 without an
error. A real hub and its proxy."""

from __future__ import annotations

import re

import requests

from tests.helpers.hubclient import HubClient, HubProcess


def test_refused_spawns_are_one_warning_line_each_without_a_traceback(
    hub: HubProcess, login
) -> None:
    bob: HubClient = login("bob")
    before = len(hub.log())
    assert bob.post_spawn({"profile": "gpu-a100"}).status_code == 400
    api = bob.api("POST", "users/bob/servers/x", json={"profile": "cpu-small", "zzz": "1"})
    assert api.status_code == 400, api.text
    assert requests.post(f"{hub.url}/hub/api/users/bob/tokens", json={}).status_code == 403

    log = hub.log()[before:]
    refusals = [line for line in log.splitlines() if "Spawn refused" in line]
    assert len(refusals) == 2, log
    assert "Spawn refused for bob: profile: " in refusals[0] and "gpu-a100" in refusals[0]
    assert "Spawn refused for bob: zzz: unknown field 'zzz'" in refusals[1]
    # No error, no traceback: the requests' own access lines stay (a 4xx is told at WARNING).
    assert not [line for line in log.splitlines() if re.match(r"\[(E|C) ", line)], log
    assert "Traceback" not in log and "unhandled user_options" not in log, log
    assert "NoneType" not in log, log
