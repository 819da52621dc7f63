"""A spawn form or query that is not UTF-8 text is refused by the hub with a 400 naming the field
(JupyterHub's own spawn page answered 500), and nothing starts."""

from __future__ import annotations

from hubflow.hub.forms import first_undecodable
from tests.helpers.hubclient import HubClient, HubProcess


def test_the_first_undecodable_argument_is_named() -> None:
    assert first_undecodable({"a": [b"ok"], "b": [b"fine", b"\xff\xfe"]}) == "b"
    assert first_undecodable({"a": ["é".encode()]}) is None


def test_a_spawn_form_or_query_that_is_not_text_is_a_400_naming_the_field(
    hub: HubProcess,
) -> None:
    bob = HubClient(hub, "bob").login()
    bob.spawn_page()
    body = (
        b"profile=cpu-small&profile-option-cpu-small--flavour=%FF%FE&_xsrf=" + bob.xsrf().encode()
    )
    r = bob.post(
        f"{hub.url}/hub/spawn/bob",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
    )
    assert r.status_code == 400, r.text[-300:]
    assert "profile-option-cpu-small--flavour: must be UTF-8 text" in r.text
    r = bob.get(f"{hub.url}/hub/spawn/bob?profile=%FF", allow_redirects=False)
    assert r.status_code == 400 and "profile: must be UTF-8 text" in r.text
    assert bob.server() is None
    # the form still works for text
    assert bob.get(f"{hub.url}/hub/spawn/bob").status_code == 200
