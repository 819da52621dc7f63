"""The shell commands of the docs: fenced blocks tagged bash, sh, shell, zsh or console.

A block preceded (blank lines apart) by the comment line `<!-- cluster-only -->`, optionally
with a reason (`<!-- cluster-only: needs a Kubernetes cluster -->`), needs a real cluster or a
container engine and is not run by tests. In `console` blocks only lines starting with `$ ` are
commands (the rest is output). Comments, backslash continuations and here-documents are
understood: a here-document's body is part of its command, not commands of its own.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

SHELL_LANGUAGES = {"bash", "sh", "shell", "zsh", "console"}
CLUSTER_ONLY = re.compile(r"^<!--\s*cluster-only(:[^>]*)?\s*-->$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")


@dataclass(frozen=True)
class Block:
    """A fenced shell block: where it is (file, line, the heading it is under), its language,
    its text, and whether it is marked cluster-only."""

    path: Path
    line: int
    section: str
    language: str
    text: str
    cluster_only: bool

    def commands(self) -> list[str]:
        """Its commands, each normalized (see `normalize`)."""
        lines = self.text.splitlines()
        if self.language == "console":
            lines = _console_commands(lines)
        commands: list[str] = []
        pending = ""
        heredoc_end: str | None = None
        for line in lines:
            if heredoc_end is not None:
                heredoc_end = None if line.strip() == heredoc_end else heredoc_end
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            command = normalize(pending + line)
            pending = ""
            if command:
                commands.append(command)
                heredoc = _HEREDOC.search(line)
                heredoc_end = heredoc.group(2) if heredoc else None
        return commands


def _console_commands(lines: list[str]) -> list[str]:
    """A console transcript's command lines (`$ ` and their continuations), prompts removed."""
    kept: list[str] = []
    for line in lines:
        if line.startswith("$ "):
            kept.append(line[2:])
        elif kept and kept[-1].rstrip().endswith("\\"):
            kept.append(line)
    return kept


def normalize(command: str) -> str:
    """A command as the registry knows it: its comment dropped, white space collapsed, quoting
    kept as written."""
    quote = ""
    for index, char in enumerate(command):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or command[index - 1].isspace()):
            command = command[:index]
            break
    return " ".join(command.split())


def shell_blocks(path: Path) -> list[Block]:
    """The shell blocks of one Markdown file, in order."""
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    previous = ""  # the last non-blank line outside any block
    section = ""
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            if lines[index].strip():
                previous = lines[index].strip()
            if lines[index].startswith("#"):
                section = lines[index].lstrip("#").strip()
            index += 1
            continue
        marker, language = fence.group(2), fence.group(3).lower()
        start = index
        index += 1
        body = []
        while index < len(lines) and not lines[index].strip().startswith(marker):
            body.append(lines[index][len(fence.group(1)) :])
            index += 1
        index += 1
        if language in SHELL_LANGUAGES:
            cluster_only = bool(CLUSTER_ONLY.match(previous))
            text = "\n".join(body)
            blocks.append(Block(path, start + 1, section, language, text, cluster_only))
        previous = ""
    return blocks


def section_block(path: Path, section: str) -> Block:
    """The first shell block under the heading `section` of a Markdown file."""
    for block in shell_blocks(path):
        if block.section == section:
            return block
    raise LookupError(f"{path}: no shell block under the heading {section!r}")


def run_shell(
    text: str, cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run commands as bash runs them, stopping at the first one that fails."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", text],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
