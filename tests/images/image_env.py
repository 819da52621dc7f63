"""A virtualenv standing for an image's Python environment, made by the Dockerfile's own steps.

No Docker engine runs here, so the environment is built by following the Dockerfile: its
`python3 -m venv`, its COPY of repository files and its `pip install` commands run as written,
with the image's paths mapped to local ones (the image's virtualenv to this virtualenv, other
paths under a staging folder). System steps (apt-get, downloads, users) are the image's alone.
Three things differ from a real build, on purpose: pip keeps its cache and skips compiling
bytecode (CI time: Python compiles on import instead), and an `--index-url` is dropped, since
PyPI is the only index this machine reaches.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.images.dockerfile import Dockerfile

ROOT = Path(__file__).resolve().parents[2]
#: Where the images keep their Python environment (ENV VIRTUAL_ENV in the Dockerfiles).
IMAGE_VENV = "/opt/hubflow"
_DROPPED_FLAGS = {"--no-cache-dir"}
_DROPPED_OPTIONS = {"--index-url"}


def shell_commands(run_text: str) -> list[list[str]]:
    """The commands of a RUN line joined by `&&`, each as its words."""
    commands: list[list[str]] = [[]]
    for word in shlex.split(run_text):
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    return [command for command in commands if command]


class ImageEnv:
    """An image's Python environment as a local virtualenv (`venv`), staged files in `stage`."""

    def __init__(self, workdir: Path, dry_run: frozenset[str] = frozenset()) -> None:
        """`dry_run`: requirements files (by name) only resolved with `pip install --dry-run`."""
        self.venv = workdir / "venv"
        self.stage = workdir / "stage"
        self.dry_run = dry_run
        self.log: list[str] = []

    @property
    def bin(self) -> Path:
        """The virtualenv's bin folder."""
        return self.venv / "bin"

    def local(self, image_path: str) -> Path:
        """Where a path of the image lives here."""
        if image_path == IMAGE_VENV or image_path.startswith(IMAGE_VENV + "/"):
            return self.venv / image_path[len(IMAGE_VENV) :].lstrip("/")
        return self.stage / image_path.lstrip("/")

    def build(self, dockerfile: Dockerfile) -> None:
        """Run the Dockerfile's COPY and Python steps here, in order."""
        for instruction in dockerfile.instructions:
            if instruction.keyword == "COPY" and "--from=" not in instruction.text:
                *sources, destination = instruction.words
                for source in sources:
                    self._copy(ROOT / source, destination)
            elif instruction.keyword == "RUN":
                for command in shell_commands(instruction.text):
                    self._run(command)

    def _copy(self, source: Path, destination: str) -> None:
        target = self.local(destination)
        if destination.endswith("/"):
            target = target / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "node_modules")
            shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)

    def _run(self, command: list[str]) -> None:
        if command[:3] == ["python3", "-m", "venv"]:
            self._check([sys.executable, "-m", "venv", str(self.local(command[3]))])
        elif command[:2] == ["pip", "install"]:
            self._check(
                [
                    str(self.bin / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--no-compile",
                    *self._pip_args(command[2:]),
                ]
            )

    def _pip_args(self, args: list[str]) -> list[str]:
        kept: list[str] = []
        words = iter(args)
        for word in words:
            if word in _DROPPED_OPTIONS:
                next(words)
            elif word.split("=")[0] in _DROPPED_OPTIONS or word in _DROPPED_FLAGS:
                continue
            else:
                kept.append(str(self.local(word)) if word.startswith("/") else word)
        if any(Path(word).name in self.dry_run for word in kept):
            kept.insert(0, "--dry-run")
        return kept

    def _check(self, command: list[str]) -> None:
        self.log.append(shlex.join(command))
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if done.returncode:
            raise RuntimeError(
                f"{shlex.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )

    def packages(self) -> dict[str, str]:
        """Installed distributions: name -> version."""
        listed = subprocess.run(
            [str(self.bin / "python"), "-m", "pip", "list", "--format=json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        # Names as PEP 503 normalizes them: pip lists some with "_", some with "-".
        return {
            re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"]
            for p in json.loads(listed.stdout)
        }

    @contextlib.contextmanager
    def layer(self, dockerfile: Dockerfile) -> Iterator[set[str]]:
        """Build a Dockerfile that starts from this environment's image on top of it, yield
        what it added, then remove that again (so the next layer starts from the base alone)."""
        before = self.packages()
        self.build(dockerfile)
        after = self.packages()
        changed = {name for name in before if after.get(name) != before[name]}
        if changed:
            raise AssertionError(
                f"{dockerfile.path} changed the base's packages: {sorted(changed)}"
            )
        added = set(after) - set(before)
        try:
            yield added
        finally:
            if added:
                self._check(
                    [str(self.bin / "python"), "-m", "pip", "uninstall", "-y", *sorted(added)]
                )
