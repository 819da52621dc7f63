"""The user's guide's blocks run as written against a real hub with the shipped profiles:
getting a token with curl, starting a named server through the REST API with curl, and jobs
from a server's terminal."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.docs.doc_blocks import run_shell, section_block
from tests.helpers.hubclient import HubClient, HubProcess

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "user.md"
DEFAULT_PROFILES = str(ROOT / "profiles" / "default.yaml")
#: The hub address the guide's REST example uses; the test's hub stands in for it.
GUIDE_HUB = "http://127.0.0.1:8000"


def test_token_block_gets_a_token_with_the_password_and_calls_the_hub_and_jobs_api(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    hub = hub_factory(profiles=[DEFAULT_PROFILES])
    text = section_block(GUIDE, "From a script: a token").text
    assert GUIDE_HUB in text
    done = run_shell(text.replace(GUIDE_HUB, hub.url), tmp_path, dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr + hub.log()[-3000:]
    # The two answers, one JSON document after the other.
    user, end = json.JSONDecoder().raw_decode(done.stdout)
    jobs = json.loads(done.stdout[end:])
    assert user["name"] == "alice" and user["kind"] == "user"
    assert jobs["jobs"] == []
    # The token is alice's, with the note and lifetime the block gave it.
    admin = HubClient(hub, "admin").login()
    tokens = admin.api("GET", "users/alice/tokens").json()["api_tokens"]
    (token,) = [t for t in tokens if t["note"] == "my script"]
    assert token["expires_at"] is not None


def test_rest_api_block_starts_watches_and_stops_a_named_server(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    hub = hub_factory(profiles=[DEFAULT_PROFILES])
    alice = HubClient(hub, "alice").login()
    text = section_block(GUIDE, "From a script: the REST API").text
    assert GUIDE_HUB in text
    env = dict(os.environ, TOKEN=alice.new_token())
    done = run_shell(text.replace(GUIDE_HUB, hub.url), tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr + hub.log()[-3000:]
    assert '"ready": true' in done.stdout, done.stdout
    deadline = time.monotonic() + 60
    while alice.server("analysis") is not None:
        assert time.monotonic() < deadline, "the DELETE did not stop the server"
        time.sleep(0.3)
    # The stopped server keeps what it was started with: the block's choices.
    user = alice.api("GET", "users/alice?include_stopped_servers=1").json()
    options = user["servers"]["analysis"]["user_options"]
    assert options["profile"] == "large-cpu"
    assert options["profile-option-large-cpu--cpu"] == "4"


def test_terminal_block_runs_jobs_from_a_server(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    hub = hub_factory(profiles=[DEFAULT_PROFILES])
    alice = HubClient(hub, "alice").login()
    alice.spawn({"profile": "small-cpu"})
    workspace = hub.data_dir / "users" / "alice" / "workspace"
    # What the server's terminal has: the launcher's variables and the server's Python first.
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        HUBFLOW_JOBS_URL=hub.jobs_url,
        HUBFLOW_WORKSPACE=str(workspace),
        JUPYTERHUB_API_TOKEN=alice.new_token(),
        JUPYTERHUB_SERVER_NAME="",
    )
    text = section_block(GUIDE, "4. Run a script as a job from a terminal").text
    done = run_shell(text, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[rank 1] rank 1 of 2 args ['--epochs', '3']" in out
    # The second job's logs: both ranks once followed, then rank 1's alone.
    assert out.count("[rank 0] rank 0 of 2 args []") == 1
    assert out.count("[rank 1] rank 1 of 2 args []") == 2
    assert (workspace / "train.py").is_file()
    listed = [line for line in out.splitlines() if line.startswith("job ")]
    assert len(listed) >= 3 and all("Succeeded" in line for line in listed[-2:]), out
