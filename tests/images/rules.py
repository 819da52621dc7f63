"""hubflow's own rules for its Dockerfiles, beyond what hadolint checks.

- the base image is pinned: a tag other than `latest`, or a digest; an image of this build
  (hubflow/...) is passed in by images/build.py with the build's tag;
- the image runs as uid 1000, gid 100, the user the Kubernetes spawner runs users' pods as;
- nothing comes from a URL through ADD (ADD is not used at all: COPY, or a checked download);
- every COPY source exists, and every requirements file pip installs was copied from images/.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.images.dockerfile import Dockerfile

ROOT = Path(__file__).resolve().parents[2]
#: The user and group of users' pods (spawner/kubernetes.py: uid, gid, fs_gid).
POD_USER = "1000:100"


def base_image_problem(image: str) -> str | None:
    """Why a base image reference is not pinned, or None."""
    if image.startswith("hubflow/"):
        return None
    if "@sha256:" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return f"base image {image!r} has no tag: pin a version or a digest"
    if tag == "latest":
        return f"base image {image!r} uses the moving tag 'latest': pin a version or a digest"
    return None


def pip_requirement_files(dockerfile: Dockerfile) -> list[str]:
    """The paths that RUN's `pip install -r PATH` read, inside the image."""
    files = []
    for run in dockerfile.all("RUN"):
        words = shlex.split(run.text)
        files += [
            words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-r", "--requirement")
        ]
    return files


def problems(dockerfile: Dockerfile, root: Path = ROOT) -> list[str]:
    """Every broken rule, as `file:line: message`."""
    where = dockerfile.path
    found = []
    froms = dockerfile.all("FROM")
    if not froms:
        return [f"{where}: no FROM"]
    problem = base_image_problem(dockerfile.base_image())
    if problem:
        found.append(f"{where}:{froms[-1].line}: {problem}")
    user = dockerfile.final_user()
    if user != POD_USER:
        found.append(f"{where}: runs as {user or 'root (no USER)'}, not {POD_USER} (uid:gid)")
    for add in dockerfile.all("ADD"):
        kind = "a URL" if re.search(r"\w+://", add.text) else "files"
        found.append(
            f"{where}:{add.line}: ADD of {kind}: use COPY, or download and check it in RUN"
        )
    copied: dict[str, str] = {}
    for copy in dockerfile.all("COPY"):
        if "--from=" in copy.text:
            continue
        *sources, destination = copy.words
        for source in sources:
            if not (root / source).exists():
                found.append(f"{where}:{copy.line}: COPY source {source} does not exist")
            target = (
                destination.rstrip("/") + "/" + Path(source).name
                if destination.endswith("/")
                else destination
            )
            copied[target] = source
    for path in pip_requirement_files(dockerfile):
        source = copied.get(path)
        if source is None:
            found.append(f"{where}: pip installs {path}, which no COPY put there")
        elif not source.startswith("images/"):
            found.append(f"{where}: {path} comes from {source}, not from images/")
    return found
