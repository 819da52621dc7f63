"""Read a Dockerfile into its instructions, for checks that need no Docker engine."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword (upper case), its text after the keyword, its first line."""

    keyword: str
    text: str
    line: int

    @property
    def words(self) -> list[str]:
        """The text split on white space, without `--flag=value` options (COPY --chown=...)."""
        return [word for word in self.text.split() if not word.startswith("--")]


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile."""

    path: Path
    instructions: list[Instruction]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        """Parse `path`: comments dropped, backslash continuations joined."""
        instructions: list[Instruction] = []
        pending: list[str] = []
        start = 0
        for number, raw in enumerate(path.read_text().splitlines(), start=1):
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if pending and line.startswith("#"):
                continue
            if not pending:
                start = number
            pending.append(line[:-1] if line.endswith("\\") else line)
            if not line.endswith("\\"):
                keyword, _, text = " ".join(pending).partition(" ")
                instructions.append(Instruction(keyword.upper(), text.strip(), start))
                pending = []
        if pending:
            raise ValueError(f"{path}:{start}: the file ends inside a continued line")
        return cls(path, instructions)

    def all(self, keyword: str) -> list[Instruction]:
        """The instructions with this keyword, in order."""
        return [i for i in self.instructions if i.keyword == keyword]

    def arg_defaults(self) -> dict[str, str]:
        """ARG name -> default value ('' when it has none)."""
        defaults = {}
        for arg in self.all("ARG"):
            name, _, value = arg.text.partition("=")
            defaults[name] = value.strip('"')
        return defaults

    def base_image(self) -> str:
        """The image the (last) FROM names, with ARG defaults substituted."""
        image = self.all("FROM")[-1].words[0]
        defaults = self.arg_defaults()
        return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), image)

    def final_user(self) -> str | None:
        """The user the image runs as (its last USER), None when it never sets one."""
        users = self.all("USER")
        return users[-1].text if users else None

    def env(self) -> dict[str, str]:
        """The variables ENV sets (`ENV K=V ...`), the last value of each."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.text):
                name, _, value = pair.partition("=")
                values[name] = value
        return values
