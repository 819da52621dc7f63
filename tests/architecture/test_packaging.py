"""The package builds without setuptools' warnings, and the Jobs panel's files go where Jupyter
finds them (the environment's share/ and etc/), not into a package that does not exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def source_tree(into: Path) -> Path:
    """The checkout as git sees it (tracked files and new ones it does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def test_the_wheel_builds_without_warnings_and_ships_the_extension_as_data(
    tmp_path: Path,
) -> None:
    tree = source_tree(tmp_path / "src")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(tmp_path / "dist"), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    said = built.stdout + built.stderr
    assert "Warning" not in said and "is absent from the `packages`" not in said, said
    (wheel,) = (tmp_path / "dist").glob("hubflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("hubflow/launcher/labextension/")]
    data = "hubflow-0.1.0.data/data/"
    assert f"{data}etc/jupyter/jupyter_server_config.d/hubflow.json" in names
    assert f"{data}share/jupyter/labextensions/hubflow-jobs/package.json" in names
    assert "hubflow/profiles/default.yaml" in names and "hubflow/hub/templates/spawn.html" in names
