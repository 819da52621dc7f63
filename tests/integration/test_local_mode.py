"""Local mode end to end: a real hub, its real proxy and real single-user servers, over HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.hubclient import HubClient, HubProcess, page_error

GPUS = "0:NVIDIA-A100-SXM4-80GB,1:NVIDIA-A100-SXM4-80GB"


def offered_profiles(html: str) -> set[str]:
    """The profile slugs the spawn page offers."""
    return set(re.findall(r'name="profile"[^>]*value="([^"]+)"', html))


def server_process(
    admin: HubClient, user: str, server_name: str = ""
) -> tuple[dict[str, str], Path]:
    """The environment and working directory of a user's server process (from /proc)."""
    r = admin.api("GET", f"users/{user}")
    state = r.json()["servers"][server_name]["state"]
    pid = state["pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    return env, Path(f"/proc/{pid}/cwd").resolve()


def test_spawn_page_shows_exactly_the_profiles_a_users_groups_allow(login) -> None:
    alice, bob = login("alice"), login("bob")
    assert offered_profiles(alice.spawn_page()) == {"cpu-small", "cpu-large", "gpu-a100"}
    assert offered_profiles(bob.spawn_page()) == {"cpu-small", "cpu-large"}
    # A choice restricted to a group is offered only to its members.
    assert 'value="gpu-only"' in alice.spawn_page()
    assert 'value="gpu-only"' not in bob.spawn_page()


def test_spawned_server_reflects_profile_and_answers_through_proxy(hub, login) -> None:
    alice, admin = login("alice"), login("admin")
    alice.spawn({"profile": "cpu-small", "profile-option-cpu-small--flavour": "fancy"})
    token = alice.new_token()
    r = alice.get(alice.server_url() + "api/status", headers={"Authorization": f"token {token}"})
    assert r.status_code == 200, r.text

    env, cwd = server_process(admin, "alice")
    workspace = hub.data_dir / "users" / "alice" / "workspace"
    assert cwd == workspace.resolve()
    assert env["HOME"] == str(workspace)
    assert env["HUBFLOW_TEST_PROFILE"] == "cpu-small"
    assert env["FLAVOUR"] == "fancy"
    assert env["CPU_LIMIT"] == "1.0"
    assert env["MEM_LIMIT"] == str(2 * 10**9)
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["HUBFLOW_JOBS_URL"] == hub.jobs_url
    # The python3 kernel Jupyter finds first on JUPYTER_PATH loads the launcher.
    specs = [
        Path(d) / "kernels" / "python3" / "kernel.json" for d in env["JUPYTER_PATH"].split(":")
    ]
    kernel_json = next(spec for spec in specs if spec.exists())
    assert '"--ext=hubflow.launcher"' in kernel_json.read_text()


def test_free_text_choice_and_ranged_resources(login, hub) -> None:
    alice, admin = login("alice"), login("admin")
    alice.spawn(
        {
            "profile": "cpu-large",
            "profile-option-cpu-large--cpu": "3",
            "profile-option-cpu-large--memory": "6",
        }
    )
    env, _ = server_process(admin, "alice")
    assert env["CPU_LIMIT"] == "3.0"
    assert env["MEM_LIMIT"] == str(6 * 2**30)
    alice.stop_server()
    alice.spawn(
        {
            "profile": "cpu-small",
            "profile-option-cpu-small--flavour": "unlisted-choice",
            "profile-option-cpu-small--flavour--unlisted-choice": "mango",
        }
    )
    env, _ = server_process(admin, "alice")
    assert env["FLAVOUR"] == "mango"


def test_workspace_survives_stop_and_start(login) -> None:
    alice = login("alice")
    assert alice.post_spawn({"profile": "cpu-small"}).status_code == 302
    progress = alice.spawn_progress()
    assert progress.get("ready"), progress
    said = " | ".join(progress["messages"])
    assert "Profile 'Small CPU' with JupyterLab" in said and "Workspace ready" in said, said
    alice.wait_ready()
    token = {"Authorization": f"token {alice.new_token()}"}
    put = alice.put(
        alice.server_url() + "api/contents/notes.txt",
        json={"type": "file", "format": "text", "content": "keep me"},
        headers=token,
    )
    assert put.status_code in (200, 201), put.text
    alice.stop_server()
    alice.spawn({"profile": "cpu-small"})
    got = alice.get(alice.server_url() + "api/contents/notes.txt", headers=token)
    assert got.status_code == 200, got.text
    assert got.json()["content"] == "keep me"


TAMPERED = [
    ({"profile": "no-such-profile"}, "profile"),
    ({"profile": "team-secret"}, "profile"),
    ({"profile": "cpu-small", "profile-option-cpu-small--flavour": "sour"}, "Flavour"),
    ({"profile": "cpu-small", "profile-option-cpu-small--flavour": "gpu-only"}, "Flavour"),
    (
        {
            "profile": "cpu-small",
            "profile-option-cpu-small--flavour": "unlisted-choice",
            "profile-option-cpu-small--flavour--unlisted-choice": "abc!",
        },
        "lowercase letters only",
    ),
    ({"profile": "cpu-small", "profile-option-cpu-small--ide": "emacs"}, "IDE"),
    ({"profile": "cpu-large", "profile-option-cpu-large--cpu": "9"}, "CPU"),
    ({"profile": "cpu-large", "profile-option-cpu-large--cpu": "2.5"}, "CPU"),
    ({"profile": "cpu-large", "profile-option-cpu-large--memory": "lots"}, "emory"),
    ({"profile": "gpu-a100", "profile-option-gpu-a100--gpu": "3"}, "GPU"),
]


def test_tampered_form_posts_are_refused_and_start_nothing(login) -> None:
    bob = login("bob")
    for form, named in TAMPERED:
        if form["profile"] == "gpu-a100":
            continue  # bob may not see it: covered below as alice
        r = bob.post_spawn(form)
        assert r.status_code != 302, f"{form} was accepted"
        message = page_error(r.text)
        assert named.lower() in message.lower(), f"{form}: {message!r}"
        assert bob.server() is None
    alice = login("alice")
    r = alice.post_spawn({"profile": "gpu-a100", "profile-option-gpu-a100--gpu": "3"})
    assert "GPU" in page_error(r.text)
    assert alice.server() is None
    # bob is not in gpu-users: a GPU profile is refused like any profile not offered to him.
    r = bob.post_spawn({"profile": "gpu-a100"})
    assert "profile" in page_error(r.text).lower()


def test_rest_api_spawn_is_checked_like_the_form(login) -> None:
    bob = login("bob")
    r = bob.api("POST", "users/bob/server", json={"profile": "team-secret"})
    assert r.status_code == 400, r.text
    assert "profile" in r.json()["message"].lower()
    assert bob.server() is None
    r = bob.api("POST", "users/bob/server", json={"profile": "cpu-small", "gpus": "8"})
    assert r.status_code == 400, r.text
    assert "gpus" in r.json()["message"]
    assert bob.server() is None


def test_gpus_are_handed_out_without_sharing_and_quotas_hold(hub_factory) -> None:
    hub = hub_factory(extra_env={"HUBFLOW_GPUS": GPUS})
    alice, admin, bob = (HubClient(hub, n).login() for n in ("alice", "admin", "bob"))
    assert "2 of 2" in alice.spawn_page()
    alice.spawn({"profile": "gpu-a100", "profile-option-gpu-a100--gpu": "1"})
    env, _ = server_process(admin, "alice")
    first = env["CUDA_VISIBLE_DEVICES"]
    assert first in ("0", "1")

    admin.spawn({"profile": "gpu-a100", "profile-option-gpu-a100--gpu": "1"})
    env, _ = server_process(admin, "admin")
    assert env["CUDA_VISIBLE_DEVICES"] in ("0", "1")
    assert env["CUDA_VISIBLE_DEVICES"] != first, "two users were given the same GPU"

    # Both GPUs are held now: the page says so, and a third GPU server cannot start.
    assert "0 of 2" in alice.spawn_page("second")
    r = alice.post_spawn({"profile": "gpu-a100"}, server_name="second")
    assert "GPU" in page_error(r.text)
    assert alice.server("second") is None

    # Named servers work; bob's default quota allows one server at a time.
    alice.spawn({"profile": "cpu-small"}, server_name="second")
    bob.spawn({"profile": "cpu-small"})
    r = bob.post_spawn({"profile": "cpu-small"}, server_name="another")
    assert "quota: you already run 1 server, the default limit is 1" in page_error(r.text)


def test_gpu_quota_names_the_limit(hub_factory) -> None:
    hub = hub_factory(extra_env={"HUBFLOW_GPUS": GPUS + ",2:NVIDIA-A100-SXM4-80GB"})
    alice = HubClient(hub, "alice").login()
    alice.spawn({"profile": "gpu-a100", "profile-option-gpu-a100--gpu": "2"})
    r = alice.post_spawn({"profile": "gpu-a100"}, server_name="more")
    message = page_error(r.text)
    assert "quota" in message and "gpu-users" in message and "2" in message, message


def test_bad_profile_file_stops_the_hub_with_the_field_named(hub_factory, tmp_path) -> None:
    bad = tmp_path / "gpu.yaml"
    bad.write_text(
        "profiles:\n"
        "  - slug: a100-x2\n"
        "    display_name: A100 x2\n"
        "    ides: {jupyterlab: {}}\n"
        "    gpu: {type: A100, count: 0}\n"
    )
    hub: HubProcess = hub_factory(profiles=[str(bad)], start=False)
    hub.start(wait=False)
    assert hub.proc is not None
    assert hub.proc.wait(60) != 0
    assert f"{bad}: profile 'a100-x2' > gpu.count:" in hub.log()


def test_demo_login_refuses_to_listen_beyond_loopback(hub_factory) -> None:
    hub: HubProcess = hub_factory(extra_env={"HUBFLOW_IP": "0.0.0.0"}, start=False)
    hub.start(wait=False)
    assert hub.proc is not None
    assert hub.proc.wait(60) != 0
    assert "The demo login only listens on 127.0.0.1" in hub.log()


@pytest.mark.parametrize("ide", ["vscode", "rstudio"])
def test_ides_missing_here_show_as_unavailable_with_the_reason(login, ide: str) -> None:
    alice = login("alice")
    page = alice.spawn_page()
    assert re.search(rf'value="{ide}"\s+disabled', page), f"{ide} offered though not installed"
    assert "not installed on this machine" in page
    r = alice.post_spawn({"profile": "cpu-small", "profile-option-cpu-small--ide": ide})
    assert "not installed" in page_error(r.text)
