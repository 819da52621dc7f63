"""The prebuilt JupyterLab extension: built from the committed sources, committed whole,
installed by a wheel, and found by Jupyter on the paths the local spawner sets."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from types import ModuleType

import pytest

from hubflow.launcher.serverext_paths import CONFIG_DIR, DATA_DIR, extension_paths
from tests.helpers.hubclient import ROOT, VENV_BIN

tomllib = pytest.importorskip("tomllib")  # Python 3.11 or newer

LABEXTENSION = ROOT / "launcher" / "labextension"
OUTPUT = DATA_DIR / "labextensions" / "hubflow-jobs"
SERVER_CONFIG = CONFIG_DIR / "jupyter_server_config.d" / "hubflow.json"


def sources_hash_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sources_hash", LABEXTENSION / "sources_hash.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def output_files() -> set[str]:
    return {p.relative_to(OUTPUT).as_posix() for p in OUTPUT.rglob("*") if p.is_file()}


def test_the_prebuilt_extension_was_built_from_the_committed_sources() -> None:
    recorded = (OUTPUT / "sources.sha256").read_text().strip()
    assert recorded == sources_hash_module().sources_hash(), (
        "the prebuilt extension is stale: rebuild it (launcher/labextension/README.md)"
    )


def test_the_bundle_jupyterlab_loads_is_there_and_every_output_file_is_committed() -> None:
    meta = json.loads((OUTPUT / "package.json").read_text())
    assert meta["name"] == "hubflow-jobs"
    assert (OUTPUT / meta["jupyterlab"]["_build"]["load"]).is_file()
    assert (OUTPUT / "schemas" / "hubflow-jobs" / "plugin.json").is_file()
    listed = subprocess.run(
        ["git", "ls-files", "--", str(DATA_DIR), str(CONFIG_DIR)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = {line for line in listed.stdout.splitlines() if "/hubflow-jobs/" in line}
    prefix = OUTPUT.relative_to(ROOT).as_posix() + "/"
    assert {prefix + name for name in output_files()} == tracked


def test_a_wheel_installs_every_output_file_and_the_server_extension_config() -> None:
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"
    ]
    installed = {
        f"{target}/{path.name}"
        for target, patterns in data_files.items()
        for pattern in patterns
        for path in ROOT.glob(pattern)
    }
    expected = {f"share/jupyter/labextensions/hubflow-jobs/{name}" for name in output_files()}
    expected.add("etc/jupyter/jupyter_server_config.d/hubflow.json")
    assert installed == expected


def spawner_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")}
    env.update(extension_paths(env))
    return env


def test_extension_paths_put_hubflows_folders_first() -> None:
    paths = extension_paths({"JUPYTER_PATH": "/a", "JUPYTER_CONFIG_PATH": "/b"})
    assert paths == {
        "JUPYTER_PATH": f"{DATA_DIR}{os.pathsep}/a",
        "JUPYTER_CONFIG_PATH": f"{CONFIG_DIR}{os.pathsep}/b",
    }


def test_jupyter_finds_the_lab_extension_and_enables_the_server_extension() -> None:
    env = spawner_env()
    listed = subprocess.run(
        [str(VENV_BIN / "jupyter"), "labextension", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    assert re.search(r"hubflow-jobs v0\.1\.0 enabled\s+OK", plain), plain
    enabled = subprocess.run(
        [
            sys.executable,
            "-c",
            "from jupyter_core.paths import jupyter_config_path\n"
            "from jupyter_server.extension.config import ExtensionConfigManager\n"
            "m = ExtensionConfigManager(read_config_path=jupyter_config_path())\n"
            "print(sorted(k for k, on in m.get_jpserver_extensions().items() if on))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "'hubflow.launcher.serverext'" in enabled.stdout
    assert json.loads(SERVER_CONFIG.read_text()) == {
        "ServerApp": {"jpserver_extensions": {"hubflow.launcher.serverext": True}}
    }
