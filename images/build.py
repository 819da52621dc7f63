"""Build hubflow's images with `docker build`, in order, from images/images.yaml.

    python images/build.py [--tag TAG] [--registry PREFIX] [--push] [--print] [NAME ...]

With no NAME every image is built; a named image brings the image it starts from (`from`).
`--print` shows the commands and runs nothing (it needs no Docker engine).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "images" / "images.yaml"
ENTRY_FIELDS = {"dockerfile", "from", "args"}


def load_manifest(path: Path = MANIFEST) -> dict[str, dict[str, Any]]:
    """The images by name; an unknown field or a `from` outside the manifest is an error."""
    images: dict[str, dict[str, Any]] = yaml.safe_load(path.read_text())["images"]
    for name, entry in images.items():
        unknown = set(entry) - ENTRY_FIELDS
        if unknown:
            raise ValueError(f"{path}: {name}: unknown field(s) {', '.join(sorted(unknown))}")
        if "dockerfile" not in entry:
            raise ValueError(f"{path}: {name}: dockerfile is required")
        if entry.get("from") and entry["from"] not in images:
            raise ValueError(f"{path}: {name}: from: {entry['from']!r} is not an image here")
    return images


def build_order(images: dict[str, dict[str, Any]], names: list[str]) -> list[str]:
    """The named images (all when none) and the images they start from, bases first."""
    unknown = [name for name in names if name not in images]
    if unknown:
        raise ValueError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(images)}")
    order: list[str] = []

    def visit(name: str) -> None:
        base = images[name].get("from")
        if base:
            visit(base)
        if name not in order:
            order.append(name)

    for name in names or list(images):
        visit(name)
    return order


def build_command(name: str, entry: dict[str, Any], tag: str, registry: str) -> list[str]:
    """The `docker build` command of one image."""
    args = dict(entry.get("args") or {})
    if entry.get("from"):
        args["BASE_IMAGE"] = f"{registry}{entry['from']}:{tag}"
    command = ["docker", "build", "--file", str(ROOT / entry["dockerfile"])]
    command += ["--tag", f"{registry}{name}:{tag}"]
    for key, value in args.items():
        command += ["--build-arg", f"{key}={value}"]
    return [*command, str(ROOT)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="images to build (default: all)")
    parser.add_argument("--tag", default="latest", help="the images' tag (default: latest)")
    parser.add_argument("--registry", default="", help="a prefix such as registry.example.org/")
    parser.add_argument("--push", action="store_true", help="push each image once it is built")
    parser.add_argument("--print", action="store_true", help="print the commands, run nothing")
    options = parser.parse_args(argv)
    try:
        images = load_manifest()
        order = build_order(images, options.names)
    except ValueError as error:
        parser.error(str(error))
    for name in order:
        commands = [build_command(name, images[name], options.tag, options.registry)]
        if options.push:
            commands.append(["docker", "push", f"{options.registry}{name}:{options.tag}"])
        for command in commands:
            print(shlex.join(command), flush=True)
            if not options.print:
                subprocess.run(command, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
