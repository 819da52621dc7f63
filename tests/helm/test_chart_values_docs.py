"""values.yaml documents every value where it is set (z2jh style): each key has a comment line
right above it, or sits inside a block whose key has one (resources.requests.cpu)."""

from __future__ import annotations

import re

from tests.helm.chart import CHART

KEY = re.compile(r"^(\s*)([A-Za-z][\w.-]*):")


def undocumented(text: str) -> list[str]:
    """The dotted paths of keys with no comment above them or above any enclosing key."""
    missing: list[str] = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    previous = ""
    for line in text.splitlines():
        match = KEY.match(line)
        if match:
            indent, key = len(match.group(1)), match.group(2)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            commented = previous.strip().startswith("#") and previous.startswith(" " * indent + "#")
            documented = commented or any(doc for _, _, doc in stack)
            path = ".".join([k for _, k, _ in stack] + [key])
            if not documented:
                missing.append(path)
            stack.append((indent, key, documented))
        if line.strip():
            previous = line
    return missing


def test_every_value_is_documented_in_place() -> None:
    assert undocumented((CHART / "values.yaml").read_text(encoding="utf-8")) == []


def test_an_undocumented_value_is_found() -> None:
    text = "# the hub\nhub:\n  a: 1\nproxy:\n  # the port\n  port: 80\n  type: x\n"
    assert undocumented(text) == ["proxy", "proxy.type"]
