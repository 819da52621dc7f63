"""The submit options `%%distribute` and `hubflow-job submit` share, declared once: how many
ranks, GPUs per rank, the framework and the job's name, each bounded before it is parsed."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from hubflow.launcher.contract import FRAMEWORKS

#: The longest count accepted on a command line (more digits is never a sensible count).
MAX_COUNT_DIGITS = 6


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or len(text) > MAX_COUNT_DIGITS:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {minimum}, not {text[:20]!r}")
        if int(text) < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {minimum}, not {text!r}")
        return int(text)

    parse.__name__ = f"integer ≥ {minimum}"
    return parse


positive = _count(1)
non_negative = _count(0)

#: (flags, argparse keywords) of each shared submit option.
SUBMIT_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--workers", "-n"), {"type": positive, "required": True, "help": "number of ranks (≥ 1)"}),
    (("--gpus-per-worker", "-g"), {"type": non_negative, "default": 0, "help": "GPUs per rank"}),
    (
        ("--framework",),
        {"choices": FRAMEWORKS, "default": "pytorch", "help": "how ranks are launched"},
    ),
    (("--name",), {"default": "", "help": "a name for the job"}),
]


def add_submit_options(parser: argparse.ArgumentParser) -> None:
    """Add the shared submit options to an argparse parser."""
    for flags, keywords in SUBMIT_OPTIONS:
        parser.add_argument(*flags, **keywords)
