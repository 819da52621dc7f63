"""Every shell command in the docs is run by a test, or its block is marked cluster-only.

The docs are README.md, docs/*.md and images/*.md. A shell block is a fenced block tagged bash,
sh, shell, zsh or console (tests/docs/doc_blocks.py); a synopsis with placeholders goes in an
untagged block. To document a command:

- a command that is cheap and safe to run anywhere: add it to RUN_HERE below, with a text its
  output must contain; this test runs it;
- a command another test runs: add it to RUN_BY with that test (`path::test_name`); a test that
  runs a whole block as written claims it in BLOCKS_RUN_BY (file, heading);
- a command that needs a real cluster or a container engine: put the line
  `<!-- cluster-only -->` (or `<!-- cluster-only: the reason -->`) just before its block.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.docs.doc_blocks import Block, run_shell, section_block, shell_blocks

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "images").glob("*.md")),
]
THIS = "tests/docs/test_doc_commands.py::test_cheap_commands_run_here"

#: Commands this test runs for real, from the repository root, with a text their output holds.
RUN_HERE = {
    "hubflow-job --help": "submit",
    "hubflow-job submit --help": "--gpus-per-worker",
    "python images/build.py --print": "docker build --file",
    # docs/operator.md: checking values before installing, and the chart's profile schema.
    "helm version --short": "v",
    "helm lint helm/hubflow --strict --values helm/hubflow/examples/gpu-oidc-external-db-ingress.yaml": "0 chart(s) failed",
    'helm template hubflow helm/hubflow --namespace hubflow --values helm/hubflow/examples/gpu-oidc-external-db-ingress.yaml | grep "^kind:" | sort | uniq -c': "kind: Deployment",
    "python helm/sync_profiles.py --check": "",  # silent when in sync; the exit status says it
}

#: Commands that other tests run, each with its test (`path::name`, or a file CI runs).
RUN_BY = {
    # CI runs `make test` on every submission.
    "make test": ".ci/run",
    # `make demo` installs hubflow (with torch, without the test toolchain) and starts
    # `jupyterhub -f jupyterhub_config.py` in local mode: the hub the integration tests start and
    # use (its start and its stop: tests/integration/test_start_stop.py).
    "make demo": "tests/integration/test_local_mode.py::test_spawned_server_reflects_profile_and_answers_through_proxy",
    # docs/kubernetes.md: the Kubernetes-mode tests, which `make test` runs with the rest (on the
    # real test cluster); docs/testing-kubernetes.md: the API-fault tests among them.
    ".venv/bin/python -m pytest -q tests/kube/test_kube_hub.py tests/kube/test_kube_hub_faults.py tests/kube/test_kube_volumes.py": ".ci/run",
    ".venv/bin/python -m pytest -q tests/kube/test_kube_hub_faults.py": ".ci/run",
    # images/README.md: the opt-in test, run by hand (it installs code-server from npm).
    "HUBFLOW_TEST_CODE_SERVER=1 .venv/bin/python -m pytest tests/images -k code_server": "tests/images/test_image_envs.py::test_vscode_image_serves_code_server",
}

# docs/databases.md: the jobs database's version and upgrade, with the service's settings.
RUN_BY.update(
    dict.fromkeys(
        ("python -m hubflow.jobs.db current", "python -m hubflow.jobs.db upgrade"),
        "tests/jobs/test_migrations.py::test_the_upgrade_command_upgrades_the_database_the_settings_name",
    )
)

#: Blocks a test runs whole, as written: (file, heading) -> test. The first shell block under
#: that heading is claimed.
BLOCKS_RUN_BY = {
    (
        "docs/user.md",
        "From a script: a token",
    ): "tests/docs/test_user_guide.py::test_token_block_gets_a_token_with_the_password_and_calls_the_hub_and_jobs_api",
    (
        "docs/user.md",
        "From a script: the REST API",
    ): "tests/docs/test_user_guide.py::test_rest_api_block_starts_watches_and_stops_a_named_server",
    (
        "docs/user.md",
        "4. Run a script as a job from a terminal",
    ): "tests/docs/test_user_guide.py::test_terminal_block_runs_jobs_from_a_server",
}


def all_blocks() -> list[Block]:
    return [block for path in DOCS for block in shell_blocks(path)]


def registry() -> dict[str, str]:
    """Every registered command -> the test (or file) that runs it."""
    known = {command: THIS for command in RUN_HERE} | RUN_BY
    for (path, section), test in BLOCKS_RUN_BY.items():
        known |= {command: test for command in section_block(ROOT / path, section).commands()}
    return known


def test_docs_have_shell_blocks() -> None:
    """The check below looks at something: the docs hold shell blocks and commands."""
    blocks = all_blocks()
    assert len(blocks) >= 5 and sum(len(b.commands()) for b in blocks) >= 10


def test_every_documented_command_is_run_by_a_test_or_cluster_only() -> None:
    known = registry()
    missing = [
        f"{block.path.relative_to(ROOT)}:{block.line}: {command}"
        for block in all_blocks()
        if not block.cluster_only
        for command in block.commands()
        if command not in known
    ]
    assert not missing, (
        "commands no test runs: register them in tests/docs/test_doc_commands.py, or put "
        "<!-- cluster-only --> before their block:\n" + "\n".join(missing)
    )


def test_registered_tests_exist() -> None:
    for command, test in registry().items():
        path, _, name = test.partition("::")
        assert (ROOT / path).is_file(), f"{command!r}: {path} does not exist"
        if name:
            source = (ROOT / path).read_text()
            assert re.search(rf"^(async )?def {name}\(", source, re.M), f"{command!r}: no {test}"


def test_registry_has_no_stale_commands() -> None:
    documented = {
        command for block in all_blocks() if not block.cluster_only for command in block.commands()
    }
    stale = sorted((set(RUN_HERE) | set(RUN_BY)) - documented)
    assert not stale, f"registered but in no doc (remove them from the registry): {stale}"


@pytest.mark.parametrize("command", sorted(RUN_HERE))
def test_cheap_commands_run_here(command: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = run_shell(command, ROOT, env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert RUN_HERE[command] in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("text", "marked"),
    [
        ("<!-- cluster-only -->\n\n```bash\nhelm install x\n```\n", True),
        ("<!-- cluster-only: needs GPUs nodes -->\n```sh\nkubectl get nodes\n```\n", True),
        ("<!-- cluster-only -->\nSome words.\n```bash\nhelm install x\n```\n", False),
        ("```bash\nhelm install x\n```\n", False),
    ],
)
def test_cluster_only_marker_applies_to_the_next_block_only(
    tmp_path: Path, text: str, marked: bool
) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    (block,) = shell_blocks(doc)
    assert block.cluster_only is marked


def test_commands_are_read_as_a_shell_reads_them(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Title\n```console\n$ make demo   # starts it\nsome output\n$ helm \\\n"
        "    install x\n```\n\n```bash\ncat > a.py <<'EOF'\nimport os  # not a command\nEOF\n"
        "echo '# kept' # dropped\n```\n\n```python\nprint('not shell')\n```\n"
    )
    first, second = shell_blocks(doc)
    assert first.commands() == ["make demo", "helm install x"]
    assert second.commands() == ["cat > a.py <<'EOF'", "echo '# kept'"]
    assert first.section == "Title"
